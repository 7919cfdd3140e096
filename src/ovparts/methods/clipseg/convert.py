"""The OV-PARTS CLIPSeg baseline checkpoint (detectron2 ``.pth``) -> an ovparts ``clipseg`` checkpoint.

OV-PARTS trained transformers' CLIPSeg with its two patches (a visual adapter and a learned "non-object"
vector) under the meta-architecture attribute ``clipseg_model.``. Those are PartCLIPSeg's keys without its
object-specific branch, so the key rules, dropped keys and shape reading are PartCLIPSeg's converter's; the
model built and checked is ovparts' CLIPSeg with the ``ov-parts`` options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...convert.tokenizer import shapes_on_meta
from ...errors import CheckpointError
from ...hub import read_torch_file
from ...models.base import PartSegModel
from ..partclipseg import convert as partclipseg
from ..partclipseg.convert import Conversion

OFFICIAL_PREFIX = partclipseg.BASELINE_PREFIX  # "clipseg_model."


def read_official_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model tensors of an official ``.pth``, read with ``weights_only=True``; other files are refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The checkpoint file {str(path)!r} does not exist.")
    payload = read_torch_file(path)
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{str(path)!r} is not an OV-PARTS CLIPSeg checkpoint: it holds no 'model' dictionary of tensors."
        )
    if not any(k.startswith(OFFICIAL_PREFIX) for k in state):
        if any(k.startswith(partclipseg.OFFICIAL_PREFIX) for k in state):
            raise CheckpointError(
                f"{str(path)!r} is a PartCLIPSeg checkpoint; convert it with `ovparts convert partclipseg`."
            )
        raise CheckpointError(
            f"{str(path)!r} is not an OV-PARTS CLIPSeg checkpoint: no key starts with {OFFICIAL_PREFIX!r}."
        )
    return state


def map_key(official: str) -> str | None:
    """Our name for an official key, ``""`` for keys dropped on purpose, ``None`` for unknown keys."""
    if not official.startswith(OFFICIAL_PREFIX):
        return None
    return partclipseg.map_key(partclipseg.OFFICIAL_PREFIX + official[len(OFFICIAL_PREFIX) :])


def official_key(ours: str) -> str:
    """The official name that fills one of our tensors, for messages."""
    name = partclipseg.official_key(ours)
    if name.startswith(partclipseg.OFFICIAL_PREFIX):
        return OFFICIAL_PREFIX + name[len(partclipseg.OFFICIAL_PREFIX) :]
    return name


@dataclass
class ClipSegConversion(Conversion):
    """PartCLIPSeg's account of every key, with this checkpoint's official names in messages."""

    def summary(self) -> str:
        text = super().summary()
        return text.replace(partclipseg.OFFICIAL_PREFIX, OFFICIAL_PREFIX)


def infer_config(state: dict[str, torch.Tensor], base: dict[str, Any]) -> dict[str, Any]:
    """PartCLIPSeg's shape reading; the OV-PARTS patches are on when their tensors are in the file."""
    try:
        config = partclipseg.infer_config(state, base)
    except CheckpointError as err:  # name the key as this checkpoint spells it
        raise CheckpointError(str(err).replace(partclipseg.OFFICIAL_PREFIX, OFFICIAL_PREFIX)) from None
    config.pop("faithful", None)
    config["visual_adapter"] = any(k.startswith("visual_adapter.") for k in state)
    config["non_object_embedding"] = "non_object_embedding" in state
    return config


def expected_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    from .model import ClipSeg, ClipSegConfig

    return shapes_on_meta(ClipSeg, ClipSegConfig, config)


def convert_state_dict(
    official: dict[str, torch.Tensor], base_config: dict[str, Any] | None = None
) -> Conversion:
    """Official tensors (``clipseg_model.`` keys) -> ours + the implied config; pure, shapes checked."""
    from .model import CONFIGS

    base = dict(CONFIGS["ov-parts"] if base_config is None else base_config)
    return partclipseg.convert_with(official, base, map_key, infer_config, expected_shapes, ClipSegConversion)


def write_checkpoint(
    conversion: Conversion, out_dir: str | os.PathLike, tokenizer: str | os.PathLike
) -> Path:
    """Build the model (strict shape checks), then write safetensors + config.json + tokenizer files.

    The folder appears complete or not at all: it is written beside ``out_dir`` and renamed into place.
    """
    from .model import ClipSeg, ClipSegConfig

    def build(config: dict[str, Any], folder: str | os.PathLike) -> PartSegModel:
        return ClipSeg(ClipSegConfig.from_dict(config), tokenizer_folder=folder)

    return partclipseg.write_with(conversion, out_dir, tokenizer, build, official_key)
