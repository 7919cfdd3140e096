"""Finding weights: a local folder, the Hugging Face cache, or the hub, with one sentence when none works."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import WeightsNotFoundError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model"]


def resolve_weights(weights: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder holding ``config.json``; hub ids are looked up in the cache first, then downloaded."""
    path = Path(weights).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WeightsNotFoundError(
                f"The folder {str(path)!r} has no config.json, so it is not a checkpoint."
            )
        return path
    if path.is_file():
        raise WeightsNotFoundError(
            f"{str(path)!r} is a file; give the checkpoint folder (with config.json), "
            "or convert an official checkpoint with `ovparts convert`."
        )
    text = str(weights)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise WeightsNotFoundError(
            f"No checkpoint folder at {text!r}, and it is not a hub id like 'org/name'."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(text, revision=revision, allow_patterns=HUB_PATTERNS, local_files_only=True)
        )
    except Exception:  # not cached: try the network below  # noqa: BLE001
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            return Path(snapshot_download(text, revision=revision, allow_patterns=HUB_PATTERNS))
        except Exception as err:  # noqa: BLE001
            reason = type(err).__name__
    raise WeightsNotFoundError(
        f"Weights {text!r} are not in the Hugging Face cache and could not be downloaded ({reason}); "
        f"run `huggingface-cli download {text}` on a machine with internet and copy the folder here, "
        "then pass --weights PATH/TO/FOLDER."
    )


def weight_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsNotFoundError(f"The checkpoint folder {str(folder)!r} has no {' or '.join(WEIGHT_FILES)}.")


def read_torch_file(path: str | os.PathLike) -> object:
    """``torch.load`` restricted to tensors and plain containers: a pickle that would run code is refused."""
    import torch

    from .checkpoint_files import check_zip_checkpoint
    from .errors import CheckpointError

    check_zip_checkpoint(path)  # declared sizes first (zip directory); the legacy non-zip format is refused
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a plain tensor checkpoint"
        raise CheckpointError(
            f"{os.fspath(path)!r} could not be read as a plain PyTorch checkpoint ({type(err).__name__}); "
            "only tensors are loaded, never pickled code."
        ) from None


def load_state_dict(folder: Path) -> dict:
    """Tensors from a checkpoint folder: safetensors, or a pickle read with ``weights_only=True``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .checkpoint_files import safetensors_specs
    from .errors import CheckpointError

    file = weight_file(folder)
    if file.suffix != ".safetensors":
        state = read_torch_file(file)
        if not isinstance(state, dict):
            raise CheckpointError(f"The weights file {str(file)!r} holds no dictionary of tensors.")
        return state
    safetensors_specs(file)  # the header against the file's size, before any tensor is read
    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"The weights file {str(file)!r} is not a valid safetensors file ({err})."
        ) from err


def checkpoint_specs(folder: Path) -> dict:
    """Name -> ``TensorSpec`` of every tensor in a checkpoint folder, without reading tensor data.

    safetensors: from the header. ``pytorch_model.bin``: memory-mapped after its zip directory passed
    ``check_zip_checkpoint`` (which refuses the legacy, non-zip format).
    """
    import torch

    from .checkpoint_files import TensorSpec, check_zip_checkpoint, safetensors_specs
    from .errors import CheckpointError

    file = weight_file(folder)
    if file.suffix == ".safetensors":
        return safetensors_specs(file)
    check_zip_checkpoint(file)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a plain tensor file: read_torch_file says so in one sentence
        state = read_torch_file(file)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"The weights file {str(file)!r} holds no dictionary of tensors.")
    return {k: TensorSpec(tuple(v.shape), v.is_floating_point()) for k, v in state.items()}
