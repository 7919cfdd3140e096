"""The official PartCLIPSeg checkpoint (detectron2 ``.pth``) -> an ovparts ``partclipseg`` checkpoint.

The official model is transformers' CLIPSeg with extra decoder modules, saved under the meta-architecture's
attribute ``partclipseg_model.``; ovparts keeps those names, with CLIP under ``backbone.``. So the key map
is a short table of prefix renames, plus the keys dropped on purpose (index buffers and two modules the
official forward never uses). The architecture is read off the tensor shapes; what shapes cannot tell
(attention heads, which CLIP layers feed the decoder) comes from a base config, the full-size one by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ...convert import Conversion, Converter
from ...convert import write_checkpoint as write_checkpoint
from ...convert.conversion import settle
from ...convert.rules import count_indices, map_state_dict
from ...errors import CheckpointError

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


def recognise(state: Mapping[str, object], path: str) -> None:
    """Refuse, naming the file, a checkpoint whose keys are not PartCLIPSeg's (the baseline's included)."""
    keys = list(state)
    if not any(k.startswith(OFFICIAL_PREFIX) for k in keys):
        if any(k.startswith(BASELINE_PREFIX) for k in keys):
            raise CheckpointError(
                f"{path!r} is an OV-PARTS CLIPSeg baseline checkpoint, not PartCLIPSeg "
                f"(its keys start with {BASELINE_PREFIX!r}); convert it with `ovparts convert clipseg`."
            )
        raise CheckpointError(
            f"{path!r} is not a PartCLIPSeg checkpoint: no key starts with {OFFICIAL_PREFIX!r}."
        )


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
        "num_hidden_layers": count_indices(state, re.escape(text + "encoder.layers.") + r"(\d+)\."),
        "max_position_embeddings": shape(text + "embeddings.position_embedding.weight")[0],
    }
    config["vision_config"] = {
        **base.get("vision_config", {}),
        "hidden_size": vision_width,
        "intermediate_size": shape(vision + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_hidden_layers": count_indices(state, re.escape(vision + "encoder.layers.") + r"(\d+)\."),
        "num_channels": patch[1],
        "patch_size": patch[-1],
        "image_size": side * patch[-1],
    }
    config["projection_dim"] = shape("non_object_embedding")[1]
    config["reduce_dim"] = shape("decoder.film_mul.weight")[0]
    config["decoder_intermediate_size"] = shape("decoder.layers.0.mlp.fc1.weight")[0]
    config["use_complex_transposed_convolution"] = "decoder.transposed_convolution.0.weight" in state
    reduces = count_indices(state, re.escape("decoder.reduces.") + r"(\d+)\.")
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
    return CONVERTER.expected_shapes(config)


def convert_state_dict(
    official: Mapping[str, torch.Tensor], base_config: dict[str, Any] | None = None
) -> Conversion:
    """Official PartCLIPSeg tensors (with their ``partclipseg_model.`` prefix) -> ours + the implied config.

    Pure: no file is read or written. Shapes are checked against the model the config implies.
    """
    base = CONVERTER.named_config(CONVERTER.base_config) if base_config is None else dict(base_config)
    return convert_with(CONVERTER, official, base, map_key, infer_config, official_key)


def convert_with(
    converter: Converter,
    official: Mapping[str, torch.Tensor],
    base: dict[str, Any],
    key_map: Callable[[str], str | None],
    read_config: Callable[[dict[str, torch.Tensor], dict[str, Any]], dict[str, Any]],
    name_of: Callable[[str], str],
) -> Conversion:
    """The CLIPSeg family's conversion, given its key map, shape reading and official names (for messages).

    Every official key ends up converted, dropped on purpose or reported as unconsumed; tensors the model
    does not have are reported, and a tensor of the wrong shape is refused naming its official key.
    """
    dropped: list[str] = []

    def rename(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]] | None:
        target = key_map(key)
        if target == "":
            dropped.append(key)
            return []
        return None if target is None else [(target, value)]

    origins: dict[str, str] = {}
    state, unconsumed = map_state_dict(official, rename, origins)
    config = read_config(state, base)
    unused, missing = settle(state, converter.expected_shapes(config), origins, converter.title)
    return Conversion(
        converter.method,
        state,
        config,
        unconsumed=sorted(unconsumed + unused),
        dropped=dropped,
        missing=missing,
        missing_official=[name_of(k) for k in missing],
        style="counts",
    )


CONVERTER = Converter(
    method="partclipseg",
    title="PartCLIPSeg",
    convert=convert_state_dict,
    default_tokenizer="CIDAS/clipseg-rd64-refined",
    help="""Convert an official PartCLIPSeg checkpoint (e.g. partclipseg_voc_oracle.pth) into OUT_DIR.

    OUT_DIR then loads with `--model partclipseg --weights OUT_DIR`; it keeps the official class order and
    object-embedding index (faithful=true in its config.json), which the published weights depend on.
    """,
    recognise=recognise,
    base_config="default",
    style="counts",
    saved="Wrote {path} (load it with --model {method} --weights {path}).",
)
# The Python names of this converter's steps (the shared ones; the writer is re-exported above).
read_official_checkpoint = CONVERTER.read
