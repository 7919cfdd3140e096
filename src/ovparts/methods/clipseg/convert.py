"""The OV-PARTS CLIPSeg baseline checkpoint (detectron2 ``.pth``) -> an ovparts ``clipseg`` checkpoint.

OV-PARTS trained transformers' CLIPSeg with its two patches (a visual adapter and a learned "non-object"
vector) under the meta-architecture attribute ``clipseg_model.``. Those are PartCLIPSeg's keys without its
object-specific branch, so the key rules, dropped keys and shape reading are PartCLIPSeg's converter's; the
model built and checked is ovparts' CLIPSeg with the ``ov-parts`` options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...convert import Conversion, Converter
from ...convert import write_checkpoint as write_checkpoint
from ...errors import CheckpointError
from ..partclipseg import convert as partclipseg

OFFICIAL_PREFIX = partclipseg.BASELINE_PREFIX  # "clipseg_model."


def recognise(state: Mapping[str, object], path: str) -> None:
    """Refuse, naming the file, a checkpoint whose keys are not the baseline's (PartCLIPSeg's included)."""
    if not any(k.startswith(OFFICIAL_PREFIX) for k in state):
        if any(k.startswith(partclipseg.OFFICIAL_PREFIX) for k in state):
            raise CheckpointError(
                f"{path!r} is a PartCLIPSeg checkpoint; convert it with `ovparts convert partclipseg`."
            )
        raise CheckpointError(
            f"{path!r} is not an OV-PARTS CLIPSeg checkpoint: no key starts with {OFFICIAL_PREFIX!r}."
        )


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
    """Names and shapes of our model's tensors for ``config``, built on the meta device (no memory)."""
    return CONVERTER.expected_shapes(config)


def convert_state_dict(
    official: Mapping[str, torch.Tensor], base_config: dict[str, Any] | None = None
) -> Conversion:
    """Official tensors (``clipseg_model.`` keys) -> ours + the implied config; pure, shapes checked."""
    base = CONVERTER.named_config(CONVERTER.base_config) if base_config is None else dict(base_config)
    return partclipseg.convert_with(CONVERTER, official, base, map_key, infer_config, official_key)


CONVERTER = Converter(
    method="clipseg",
    title="CLIPSeg",
    convert=convert_state_dict,
    default_tokenizer="CIDAS/clipseg-rd64-refined",
    help="""Convert an OV-PARTS CLIPSeg baseline checkpoint (.pth with clipseg_model. keys) into OUT_DIR.

    The visual adapter and the learned non-object (background) vector come with it.

    \b
    Example:
      ovparts convert clipseg clipseg_voc.pth clipseg-ovparts-voc/
      ovparts segment photo.jpg --model clipseg --weights clipseg-ovparts-voc/ --vocab "cat: head, ear"
    """,
    recognise=recognise,
    base_config="ov-parts",
    style="counts",
    saved="Wrote {path} (load it with --model {method} --weights {path}).",
)
# The Python names of this converter's steps (the shared ones; the writer is re-exported above).
read_official_checkpoint = CONVERTER.read
