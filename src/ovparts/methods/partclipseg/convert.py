"""The official PartCLIPSeg checkpoint (detectron2 ``.pth``) -> an ovparts ``partclipseg`` checkpoint.

The official model is transformers' CLIPSeg with extra decoder modules, saved under the meta-architecture's
attribute ``partclipseg_model.``; ovparts keeps those names, with CLIP under ``backbone.``. So the key map
is a short table of prefix renames, plus the keys dropped on purpose (index buffers and two modules the
official forward never uses). The architecture is read off the tensor shapes; what shapes cannot tell
(attention heads, which CLIP layers feed the decoder) comes from a base config, the full-size one by default.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...convert.tokenizer import attach_tokenizer, shapes_on_meta
from ...errors import CheckpointError
from ...hub import read_torch_file
from ...models.base import PartSegModel

OFFICIAL_PREFIX = "partclipseg_model."
BASELINE_PREFIX = "clipseg_model."  # the OV-PARTS CLIPSeg baseline trained in the same code base

# (official name prefix after OFFICIAL_PREFIX, ovparts name prefix); the first match wins.
KEY_MAP: tuple[tuple[str, str], ...] = (
    ("clip.", "backbone.clip."),
    ("decoder.", "decoder."),
    ("visual_adapter.", "visual_adapter."),
    ("non_object_embedding", "non_object_embedding"),
)
# Dropped on purpose: index buffers we rebuild, the text adapter (multiplied by 0.0 in the official
# forward) and ``tunable_linear`` (never called).
DROPPED_PREFIXES: tuple[str, ...] = ("text_adapter.", "tunable_linear.")
DROPPED_SUFFIXES: tuple[str, ...] = ("position_ids",)


@dataclass
class Conversion:
    """The result of `convert_state_dict`: our tensors and config, and an account of every key."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    dropped: list[str] = field(default_factory=list)  # official keys left out on purpose
    unconsumed: list[str] = field(default_factory=list)  # official keys the map does not know
    missing: list[str] = field(default_factory=list)  # keys our model needs that the file lacks

    def summary(self) -> str:
        parts = [f"{len(self.state_dict)} tensors converted", f"{len(self.dropped)} dropped on purpose"]
        if self.unconsumed:
            parts.append(f"{len(self.unconsumed)} unconsumed ({', '.join(self.unconsumed[:3])})")
        if self.missing:
            names = [official_key(k) for k in self.missing[:3]]
            parts.append(f"{len(self.missing)} missing ({', '.join(names)})")
        return "; ".join(parts) + "."


def read_official_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model tensors of an official ``.pth`` (optimizer and scheduler state are discarded).

    Read with ``weights_only=True``: nothing in the file is executed. Anything that is not a PartCLIPSeg
    checkpoint is refused with one sentence.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The checkpoint file {str(path)!r} does not exist.")
    payload = read_torch_file(path)
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{str(path)!r} is not a PartCLIPSeg checkpoint: it holds no 'model' dictionary of tensors."
        )
    keys = list(state)
    if not any(k.startswith(OFFICIAL_PREFIX) for k in keys):
        if any(k.startswith(BASELINE_PREFIX) for k in keys):
            raise CheckpointError(
                f"{str(path)!r} is an OV-PARTS CLIPSeg baseline checkpoint, not PartCLIPSeg "
                f"(its keys start with {BASELINE_PREFIX!r}); convert it with `ovparts convert clipseg`."
            )
        raise CheckpointError(
            f"{str(path)!r} is not a PartCLIPSeg checkpoint: no key starts with {OFFICIAL_PREFIX!r}."
        )
    return state


def map_key(official: str) -> str | None:
    """Our name for an official key, ``""`` for keys dropped on purpose, ``None`` for unknown keys."""
    if not official.startswith(OFFICIAL_PREFIX):
        return None
    name = official[len(OFFICIAL_PREFIX) :]
    if name.endswith(DROPPED_SUFFIXES) or name.startswith(DROPPED_PREFIXES):
        return ""
    for source, target in KEY_MAP:
        if name == source or name.startswith(source):
            return target + name[len(source) :]
    return None


def official_key(ours: str) -> str:
    """The official name that fills one of our tensors (the inverse of :func:`map_key`), for messages."""
    for source, target in KEY_MAP:
        if ours == target or ours.startswith(target):
            return OFFICIAL_PREFIX + source + ours[len(target) :]
    return ours


def _count_layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def infer_config(state: dict[str, torch.Tensor], base: dict[str, Any]) -> dict[str, Any]:
    """Architecture fields read off our (already renamed) tensors, on top of ``base``."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise CheckpointError(
                f"The checkpoint lacks {official_key(key)!r}, so its architecture cannot be read."
            )
        return tuple(state[key].shape)

    text, vision = "backbone.clip.text_model.", "backbone.clip.vision_model."
    vocab_size, text_width = shape(text + "embeddings.token_embedding.weight")
    vision_width = shape(vision + "embeddings.class_embedding")[0]
    patch = shape(vision + "embeddings.patch_embedding.weight")
    positions = shape(vision + "embeddings.position_embedding.weight")[0]
    side = int(round((positions - 1) ** 0.5))
    config = dict(base)
    config["text_config"] = {
        **base.get("text_config", {}),
        "vocab_size": vocab_size,
        "hidden_size": text_width,
        "intermediate_size": shape(text + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_hidden_layers": _count_layers(state, text + "encoder.layers."),
        "max_position_embeddings": shape(text + "embeddings.position_embedding.weight")[0],
    }
    config["vision_config"] = {
        **base.get("vision_config", {}),
        "hidden_size": vision_width,
        "intermediate_size": shape(vision + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_hidden_layers": _count_layers(state, vision + "encoder.layers."),
        "num_channels": patch[1],
        "patch_size": patch[-1],
        "image_size": side * patch[-1],
    }
    config["projection_dim"] = shape("non_object_embedding")[1]
    config["reduce_dim"] = shape("decoder.film_mul.weight")[0]
    config["decoder_intermediate_size"] = shape("decoder.layers.0.mlp.fc1.weight")[0]
    config["use_complex_transposed_convolution"] = "decoder.transposed_convolution.0.weight" in state
    reduces = _count_layers(state, "decoder.reduces.")
    if reduces != len(config.get("extract_layers", [])):
        raise CheckpointError(
            f"The checkpoint's decoder reads {reduces} CLIP layers, the base config {config.get('extract_layers')}."
        )
    # Published weights depend on the official class order and object-embedding index; tokenizer files
    # are written beside the weights.
    config["faithful"] = True
    config["tokenizer"] = None
    return config


def expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of our model's tensors for ``config``, built on the meta device (no memory)."""
    from .model import PartClipSeg, PartClipSegConfig

    return shapes_on_meta(PartClipSeg, PartClipSegConfig, config)


def convert_state_dict(
    official: dict[str, torch.Tensor], base_config: dict[str, Any] | None = None
) -> Conversion:
    """Official PartCLIPSeg tensors (with their ``partclipseg_model.`` prefix) -> ours + the implied config.

    Pure: no file is read or written. Shapes are checked against the model the config implies.
    """
    from .model import CONFIGS

    base = dict(CONFIGS["default"] if base_config is None else base_config)
    return convert_with(official, base, map_key, infer_config, expected_shapes, Conversion)


def convert_with(
    official: dict[str, torch.Tensor],
    base: dict[str, Any],
    key_map: Callable[[str], str | None],
    read_config: Callable[[dict[str, torch.Tensor], dict[str, Any]], dict[str, Any]],
    shapes: Callable[[dict[str, Any]], dict[str, tuple[int, ...]]],
    result: type[Conversion],
) -> Conversion:
    """The CLIPSeg family's conversion, given its key rules, shape reading and model shapes.

    Every official key ends up converted, dropped on purpose or reported as unconsumed; tensors the model
    does not have are reported, and a tensor of the wrong shape is refused naming its official key.
    """
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    dropped, unconsumed = [], []
    for key, tensor in official.items():
        target = key_map(key)
        if target is None:
            unconsumed.append(key)
        elif target == "":
            dropped.append(key)
        else:
            state[target], origin[target] = tensor, key
    config = read_config(state, base)
    expected = shapes(config)
    missing = [k for k in expected if k not in state]
    for key in [k for k in state if k not in expected]:
        unconsumed.append(origin[key])
        del state[key]
    for key, tensor in state.items():
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(
                f"The tensor {origin[key]!r} has shape {tuple(tensor.shape)}, but the architecture read from "
                f"the checkpoint needs {expected[key]}."
            )
    return result(state, config, dropped, unconsumed, missing)


def write_checkpoint(
    conversion: Conversion, out_dir: str | os.PathLike, tokenizer: str | os.PathLike
) -> Path:
    """Build the model (strict shape checks), then write safetensors + config.json + tokenizer files."""
    from .model import PartClipSeg, PartClipSegConfig

    def build(config: dict[str, Any], folder: str | os.PathLike) -> PartSegModel:
        return PartClipSeg(PartClipSegConfig.from_dict(config), tokenizer_folder=folder)

    return write_with(conversion, out_dir, tokenizer, build, official_key)


def write_with(
    conversion: Conversion,
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike,
    build: Callable[[dict[str, Any], str | os.PathLike], PartSegModel],
    name_of: Callable[[str], str],
) -> Path:
    """Build the model ``build`` makes (strict shape checks), then write it with its tokenizer files.

    The folder appears complete or not at all: it is written beside ``out_dir`` and renamed into place.
    ``name_of`` turns one of our keys into the official name a message should show.
    """
    if conversion.missing:
        raise CheckpointError(
            f"The checkpoint lacks {len(conversion.missing)} tensors the model needs, "
            f"e.g. {name_of(conversion.missing[0])!r}."
        )
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{str(out)!r} already exists and is not an empty folder; choose a new one.")
    conversion.config, folder = attach_tokenizer(conversion.config, tokenizer)
    model = build(conversion.config, folder)
    model.load_checked_state_dict(conversion.state_dict, source="the converted checkpoint")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
