"""COCO ``segmentation`` fields (polygons, uncompressed RLE, compressed RLE) to binary masks.

ADE20K-Part-234 instances and PartImageNet parts are stored this way. pycocotools is used when installed, so
our masks match the official loaders pixel for pixel; otherwise the pure-Python codec ``coco_rle``
decodes RLE exactly and fills polygons with PIL (which may differ from pycocotools on a few edge pixels).

Both rasterisers are C code that trusts its input: pycocotools walks every pixel of every polygon edge (a
vertex at 3e8 costs gigabytes) and writes RLE runs without a bounds check. So every segmentation is checked
before it reaches them: coordinates must be finite, a polygon reaching further outside the image than the
image's own size is clipped to that window (the pixels inside the image stay covered; pixels on a clipped
edge may differ from pycocotools by one), the perimeter is bounded, and RLE runs must be non-negative and
cover exactly height x width pixels.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .coco_rle import checked_counts, decode_counts, string_to_counts

try:  # optional: exact official rasterisation
    from pycocotools import mask as _coco_mask
except ImportError:  # pragma: no cover - exercised only without pycocotools
    _coco_mask = None


# Bounds on one segmentation, beyond which it is refused rather than drawn (the cost of drawing grows with
# the number of vertices and with the perimeter in pixels).
MAX_VERTICES = 1_000_000
MAX_PERIMETER_PER_SIDE = 1_000  # total perimeter <= this x (height + width)


def has_pycocotools() -> bool:
    return _coco_mask is not None


def _clip_polygon(points: np.ndarray, low: float, high_x: float, high_y: float) -> np.ndarray:
    """Sutherland-Hodgman clipping of an (N, 2) polygon to the box [low, high_x] x [low, high_y].

    The clipped polygon covers the same points inside the box (even-odd), and its new edges run along the
    box, which lies outside the image, so the image's pixels keep their coverage.
    """
    for axis, bound, keep_below in ((0, low, False), (0, high_x, True), (1, low, False), (1, high_y, True)):
        if len(points) == 0:
            break
        values = points[:, axis]
        inside = values <= bound if keep_below else values >= bound
        if inside.all():
            continue
        previous = np.roll(points, 1, axis=0)
        previous_inside = np.roll(inside, 1)
        clipped: list[np.ndarray] = []
        for point, before, point_in, before_in in zip(points, previous, inside, previous_inside, strict=True):
            if point_in != before_in:
                t = (bound - before[axis]) / (point[axis] - before[axis])
                crossing = before + t * (point - before)
                crossing[axis] = bound
                clipped.append(crossing)
            if point_in:
                clipped.append(point)
        points = np.array(clipped, dtype=np.float64).reshape(-1, 2)
    return points


def checked_polygons(polygons: list[Any], height: int, width: int) -> list[list[float]]:
    """Finite polygons within a bounded window around the image; ``ValueError`` when one cannot be drawn.

    A vertex far outside the image (3e8, 3e8) made pycocotools allocate gigabytes and kill the process, and
    NaN or infinite coordinates have no place to be drawn; both are the input's fault, so they are refused or
    clipped here, before any rasteriser sees them. Polygons inside the window (every real annotation) are
    passed on untouched, so they are drawn exactly as the official loaders draw them.
    """
    margin = float(max(height, width, 16))
    total_vertices = sum(len(p) // 2 for p in polygons)
    if total_vertices > MAX_VERTICES:
        raise ValueError(
            f"the polygons have {total_vertices} vertices, more than the limit of {MAX_VERTICES}"
        )
    checked: list[list[float]] = []
    perimeter = 0.0
    for polygon in polygons:
        try:
            values = np.asarray([float(v) for v in polygon], dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"a polygon holds a value that is not a number ({exc})") from None
        if not np.isfinite(values).all():
            raise ValueError("a polygon has a NaN or infinite coordinate")
        points = values[: len(values) // 2 * 2].reshape(-1, 2)
        points = _clip_polygon(points, -margin, width + margin, height + margin)
        if len(points) < 3:
            continue
        perimeter += float(np.abs(points - np.roll(points, 1, axis=0)).max(axis=1).sum())
        checked.append(points.reshape(-1).tolist())
    if perimeter > MAX_PERIMETER_PER_SIDE * (height + width):
        raise ValueError(
            f"the polygons are {perimeter:.0f} pixels long inside the image, more than the limit of "
            f"{MAX_PERIMETER_PER_SIDE * (height + width)}"
        )
    return checked


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
        polygons = checked_polygons(polygons, height, width)
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        if _coco_mask is not None:
            # pycocotools reads a 4-value polygon as a box; clipping never leaves fewer than 3 points (6 values)
            rles = _coco_mask.frPyObjects(polygons, height, width)
            return _coco_mask.decode(_coco_mask.merge(rles)).astype(bool)
        return _polygons_to_mask(polygons, height, width).astype(bool)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size", [height, width])
        if [int(size[0]), int(size[1])] != [height, width]:
            raise ValueError(f"RLE size {size} does not match the image ({height}x{width})")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            runs = checked_counts(counts, height, width)
        elif isinstance(counts, str):
            runs = checked_counts(string_to_counts(counts), height, width)
        else:
            raise ValueError("RLE counts must be a list of run lengths or a compressed string")
        if _coco_mask is not None:
            rle = (
                _coco_mask.frPyObjects({"size": [height, width], "counts": runs}, height, width)
                if isinstance(counts, list)
                else {"size": [height, width], "counts": counts}
            )
            return _coco_mask.decode(rle).astype(bool)
        return decode_counts(runs, (height, width))
    raise ValueError("segmentation is neither a polygon list nor an RLE dict")
