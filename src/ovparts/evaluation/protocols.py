"""Protocols: what the model is told about objects, and therefore what a prediction may contain.

``oracle_obj`` (OV-PARTS, PartCLIPSeg, PartCATSeg)
    The ground-truth object mask of each record is given to the segmenter, which may then only choose parts
    of that object inside it. Records of one image whose regions do not overlap share one segmenter call
    (each pixel is restricted to its own object, so the answer is the same as one call per record);
    overlapping regions of different objects fall back to one call per record.
``pred_all`` (PartCLIPSeg, PartCATSeg)
    No hint: the segmenter predicts objects, background and parts over the whole vocabulary.
``pred_obj`` (the OV-PARTS paper's setting, absent from its released code)
    Object masks come from a predictor (by default the segmenter's own Pred-All object map) and then restrict
    the parts as in Oracle-Obj; a pixel predicted as background gets no part.

Whatever the protocol, the same pixels are scored: those with a part label inside the record's region, as
in all three official evaluators. The prediction on all other pixels never counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.records import IGNORE, Region, Sample
from ..errors import ConfigError, OvpartsError
from ..vocabulary import Vocabulary
from .choices import PROTOCOLS
from .restriction import masked_part_map

ALIASES = {"oracle": "oracle_obj", "oracle-obj": "oracle_obj", "pred-all": "pred_all", "pred-obj": "pred_obj"}

Segmenter = Callable[..., Any]
ObjectPredictor = Callable[[np.ndarray], np.ndarray]


def canonical_protocol(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PROTOCOLS:
        raise ConfigError(f"Unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}.")
    return key


def _part_map(result: Any, size: tuple[int, int]) -> np.ndarray:
    part_map = np.asarray(getattr(result, "part_map", result))
    if part_map.shape != size:
        raise OvpartsError(
            f"The segmenter returned a {part_map.shape[-1]}x{part_map.shape[0]} part map for a "
            f"{size[1]}x{size[0]} image; predictions must be at the original image size."
        )
    return part_map.astype(np.int64, copy=False)


def _object_map(result: Any, size: tuple[int, int]) -> np.ndarray:
    object_map = getattr(result, "object_map", None)
    if object_map is None:
        raise OvpartsError(
            "Pred-Obj needs an object map; this segmenter returned none (pass object_predictor)."
        )
    object_map = np.asarray(object_map)
    if object_map.shape != size:
        raise OvpartsError("The predicted object map does not have the image's size.")
    return object_map.astype(np.int64, copy=False)


def oracle_object_mask(regions: list[Region], size: tuple[int, int]) -> np.ndarray | None:
    """All records' objects painted into one map, or None when regions of different objects overlap."""
    mask = np.full(size, IGNORE, dtype=np.int64)
    for region in regions:
        clash = region.mask & (mask >= 0) & (mask != region.object_id)
        if clash.any():
            return None
        mask[region.mask] = region.object_id
    return mask


def predict(
    protocol: str,
    segmenter: Segmenter,
    image: np.ndarray,
    sample: Sample,
    vocabulary: Vocabulary,
    object_predictor: ObjectPredictor | None = None,
    restrict: bool = True,
) -> list[tuple[Region, np.ndarray]]:
    """Part predictions (HxW, -1 = no part) for every record of a sample under a protocol.

    ``restrict``: calls with an object mask run only the parts of the objects in it where the model's
    classes are independent (``restriction.py``); the label maps are the same as with the full vocabulary.
    """
    size = sample.size

    def masked(object_mask: np.ndarray) -> Any:
        if restrict:
            return masked_part_map(segmenter, image, vocabulary, object_mask)
        return segmenter(image, vocabulary, object_mask=object_mask)

    if protocol == "oracle_obj":
        shared = oracle_object_mask(sample.regions, size)
        if shared is not None:
            part_map = _part_map(masked(shared), size)
            return [(region, part_map) for region in sample.regions]
        return [
            (
                region,
                _part_map(masked(np.where(region.mask, region.object_id, IGNORE)), size),
            )
            for region in sample.regions
        ]
    if protocol == "pred_all":
        part_map = _part_map(segmenter(image, vocabulary), size)
        return [(region, part_map) for region in sample.regions]
    if protocol == "pred_obj":
        if object_predictor is not None:
            objects = np.asarray(object_predictor(image)).astype(np.int64)
            if objects.shape != size:
                raise OvpartsError("The object predictor returned a map that does not have the image's size.")
        else:
            objects = _object_map(segmenter(image, vocabulary), size)
        part_map = _part_map(masked(objects), size)
        return [(region, part_map) for region in sample.regions]
    raise ConfigError(f"Unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}.")
