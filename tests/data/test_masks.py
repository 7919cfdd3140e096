"""COCO segmentation decoding: our pure-Python fallback agrees with pycocotools (the RLE codec itself is
tested in test_coco_rle.py)."""

import numpy as np
import pytest

from ovparts.data import coco_rle, masks
from ovparts.data.masks import _polygons_to_mask, segmentation_to_mask


def encode_rle(mask: np.ndarray) -> dict:
    return coco_rle.encode(mask, compressed=False)


def blob(h=23, w=31, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=bool)
    mask[3:17, 5:20] = True
    mask[rng.random((h, w)) < 0.1] ^= True
    return mask


def test_uncompressed_rle_round_trip():
    mask = blob()
    assert np.array_equal(segmentation_to_mask(encode_rle(mask), *mask.shape), mask)
    starts_with_one = np.ones((4, 5), dtype=bool)
    assert np.array_equal(segmentation_to_mask(encode_rle(starts_with_one), 4, 5), starts_with_one)


def test_compressed_rle_fallback_matches_pycocotools(monkeypatch):
    coco = pytest.importorskip("pycocotools.mask")
    mask = blob(seed=1)
    rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    segmentation = {"size": list(mask.shape), "counts": rle["counts"].decode()}
    assert np.array_equal(segmentation_to_mask(segmentation, *mask.shape), mask)
    monkeypatch.setattr(masks, "_coco_mask", None)
    assert np.array_equal(segmentation_to_mask(segmentation, *mask.shape), mask)


def test_polygon_fallback_is_close_to_pycocotools():
    pytest.importorskip("pycocotools.mask")
    polygon = [[4.0, 3.0, 25.0, 5.0, 20.0, 18.0, 6.0, 15.0]]
    exact = segmentation_to_mask(polygon, 23, 31)
    fallback = _polygons_to_mask(polygon, 23, 31).astype(bool)
    iou = (exact & fallback).sum() / (exact | fallback).sum()
    assert iou > 0.85


def test_fallback_path_without_pycocotools(monkeypatch):
    monkeypatch.setattr(masks, "_coco_mask", None)
    mask = blob(seed=2)
    assert np.array_equal(segmentation_to_mask(encode_rle(mask), *mask.shape), mask)
    compact = coco_rle.encode(mask)
    assert np.array_equal(segmentation_to_mask(compact, *mask.shape), mask)
    assert segmentation_to_mask([[2, 2, 10, 2, 10, 10, 2, 10]], 12, 12)[5, 5]


def test_malformed_segmentations_raise_value_error():
    with pytest.raises(ValueError):
        segmentation_to_mask({"size": [5, 5], "counts": [3, 2]}, 6, 6)
    with pytest.raises(ValueError):
        segmentation_to_mask("nonsense", 6, 6)
