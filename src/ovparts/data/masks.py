"""COCO ``segmentation`` fields (polygons, uncompressed RLE, compressed RLE) to binary masks.

ADE20K-Part-234 instances and PartImageNet parts are stored this way. pycocotools is used when installed, so
our masks match the official loaders pixel for pixel; otherwise a small pure-Python fallback decodes RLE
exactly and fills polygons with PIL (which may differ from pycocotools on a few edge pixels).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

try:  # optional: exact official rasterisation
    from pycocotools import mask as _coco_mask
except ImportError:  # pragma: no cover - exercised only without pycocotools
    _coco_mask = None


def has_pycocotools() -> bool:
    return _coco_mask is not None


def _decode_counts_string(counts: str) -> list[int]:
    """The LEB128-like run-length string of COCO's compressed RLE (maskApi.c ``rleFrString``)."""
    values: list[int] = []
    position = 0
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    while position < len(data):
        value, shift, more = 0, 0, True
        while more:
            chunk = data[position] - 48
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def _runs_to_mask(counts: list[int], height: int, width: int) -> np.ndarray:
    """Alternating runs of 0 and 1 in column-major order, as COCO stores them."""
    flat = np.zeros(height * width, dtype=np.uint8)
    position, value = 0, 0
    for run in counts:
        if value:
            flat[position : position + run] = 1
        position += run
        value ^= 1
    if position != height * width:
        raise ValueError(f"RLE covers {position} pixels, expected {height * width}")
    return flat.reshape((width, height)).T


def _polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        points = [(float(polygon[i]), float(polygon[i + 1])) for i in range(0, len(polygon) - 1, 2)]
        if len(points) >= 3:
            draw.polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8)


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """An HxW bool mask from any COCO segmentation; raises ``ValueError`` for malformed input."""
    with warnings.catch_warnings():
        # pycocotools 2.0.x warns about numpy 2's copy keyword on every decode; the result is correct
        warnings.simplefilter("ignore", DeprecationWarning)
        return _segmentation_to_mask(segmentation, height, width)


def _segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list | tuple) and len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        if _coco_mask is not None:
            rles = _coco_mask.frPyObjects([list(map(float, p)) for p in polygons], height, width)
            return _coco_mask.decode(_coco_mask.merge(rles)).astype(bool)
        return _polygons_to_mask(polygons, height, width).astype(bool)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size", [height, width])
        if [int(size[0]), int(size[1])] != [height, width]:
            raise ValueError(f"RLE size {size} does not match the image ({height}x{width})")
        counts = segmentation["counts"]
        if _coco_mask is not None:
            rle = (
                _coco_mask.frPyObjects(segmentation, height, width)
                if isinstance(counts, list)
                else {"size": [height, width], "counts": counts}
            )
            return _coco_mask.decode(rle).astype(bool)
        runs = [int(c) for c in counts] if isinstance(counts, list) else _decode_counts_string(counts)
        return _runs_to_mask(runs, height, width).astype(bool)
    raise ValueError("segmentation is neither a polygon list nor an RLE dict")


def encode_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a bool mask (used by the synthetic datasets; readable without pycocotools)."""
    flat = np.asarray(mask, dtype=np.uint8).T.reshape(-1)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}
