"""The tokenizer step every converter shares: find the tokenizer, check it, and copy its ids into the config.

An official checkpoint stores CLIP weights but no tokenizer, so a converter writes the tokenizer it is given
beside the weights. ``config.json`` must then name that tokenizer's start / end-of-text ids: transformers'
CLIP text model pools each prompt at the first end-of-text id, and with an id the tokenizer never emits it
pools every prompt at position 0, giving every class the same embedding. :func:`attach_tokenizer` is the one
place that sets those ids, for every converter.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import CheckpointError

TOKENIZER_FILES = ("vocab.json", "tokenizer.json")
# What a hub id's tokenizer needs (vocab.json, merges.txt, tokenizer.json, tokenizer / special-token configs).
TOKENIZER_PATTERNS = ["*.json", "*.txt"]
SPECIAL_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")


def resolve_tokenizer_folder(tokenizer: str | os.PathLike) -> str:
    """A folder with CLIP tokenizer files: a local folder as given, or a hub id (cache first, then the hub).

    Only the tokenizer's small files are fetched for a hub id, never the model weights beside them.
    """
    path = os.path.expanduser(os.fspath(tokenizer))
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, n)) for n in TOKENIZER_FILES):
            raise CheckpointError(
                f"The folder {path!r} has no CLIP tokenizer files (vocab.json + merges.txt or tokenizer.json)."
            )
        return path
    text = os.fspath(tokenizer)
    if text.count("/") != 1 or text.startswith((".", "/", "~")) or os.path.exists(path):
        raise CheckpointError(
            f"No tokenizer folder at {text!r}, and it is not a hub id like 'openai/clip-vit-base-patch16'."
        )
    from huggingface_hub import snapshot_download  # noqa: PLC0415

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    for local_only in (True,) if offline else (True, False):
        try:
            folder = snapshot_download(text, allow_patterns=TOKENIZER_PATTERNS, local_files_only=local_only)
        except Exception:  # noqa: BLE001 - not cached / not reachable: try the next source, then refuse
            continue
        if any(os.path.isfile(os.path.join(folder, n)) for n in TOKENIZER_FILES):
            return folder
    raise CheckpointError(
        f"The tokenizer {text!r} is not in the Hugging Face cache"
        + (" and HF_HUB_OFFLINE is set" if offline else " and could not be downloaded")
        + "; pass --tokenizer with a folder holding vocab.json and merges.txt."
    )


def tokenizer_special_ids(tokenizer: Any) -> dict[str, int]:
    """The BOS / EOS / PAD ids a loaded tokenizer emits (those it does not define are left out)."""
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return {k: v for k, v in ids.items() if v is not None}


def with_tokenizer_ids(config: dict, tokenizer_folder: str | os.PathLike) -> dict:
    """The config with the text encoder's BOS / EOS / PAD ids taken from the tokenizer in the folder.

    transformers pools the text at the first EOS id, so it must agree with the tokenizer (OpenAI's BPE:
    49406 / 49407; the tests' tiny tokenizer: 512 / 513).
    """
    from ..backbones.clip import load_tokenizer  # noqa: PLC0415

    ids = tokenizer_special_ids(load_tokenizer(tokenizer_folder))
    return {**config, "text_config": {**config["text_config"], **ids}}


def attach_tokenizer(config: dict, tokenizer: str | os.PathLike) -> tuple[dict, str]:
    """The converter step: (config with the tokenizer's ids, the tokenizer folder to save beside the weights).

    Refuses, in one sentence, a tokenizer that cannot be loaded or that has more tokens than the checkpoint's
    token embedding has rows (it cannot be the tokenizer the weights were trained with).
    """
    from ..backbones.clip import load_tokenizer  # noqa: PLC0415

    folder = resolve_tokenizer_folder(tokenizer)  # refuses, in one sentence, what is neither folder nor id
    try:
        loaded = load_tokenizer(folder)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"No CLIP tokenizer could be loaded from {os.fspath(tokenizer)!r} ({type(err).__name__}); pass "
            "--tokenizer with a folder or a cached hub id such as openai/clip-vit-base-patch16."
        ) from None
    rows = config["text_config"].get("vocab_size")
    if rows is not None and len(loaded) > rows:
        raise CheckpointError(
            f"The tokenizer in {os.fspath(tokenizer)!r} has {len(loaded)} tokens, more than the checkpoint's "
            f"{rows}; it is not the one the weights were trained with."
        )
    ids = tokenizer_special_ids(loaded)
    return {**config, "text_config": {**config["text_config"], **ids}}, folder


def for_shape_check(config: dict) -> dict:
    """The config with the built-in tiny tokenizer, to build a model only for its tensor names and shapes.

    Its ids are the tiny tokenizer's, so building on the meta device passes the load-time id check; nothing
    built from this config is ever saved.
    """
    from ..text.tiny_tokenizer import tiny_tokenizer_special_ids  # noqa: PLC0415

    ids = {k: v for k, v in tiny_tokenizer_special_ids().items() if k in SPECIAL_ID_FIELDS}
    return {**config, "tokenizer": "tiny", "text_config": {**config["text_config"], **ids}}


def shapes_on_meta(
    model_class: type, config_class: type, config: dict, **build: Any
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors ``model_class`` holds for ``config``: built on the meta device (no
    memory) with the tiny tokenizer (:func:`for_shape_check`); ``build`` goes to the constructor."""
    import torch  # noqa: PLC0415

    with torch.device("meta"):
        model = model_class(config_class.from_dict(for_shape_check(config)), **build)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
