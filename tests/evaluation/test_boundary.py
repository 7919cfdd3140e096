"""Boundary IoU: the d2-compatible whole-map variant against a literal cv2.erode emulation, and the per-class
definition against a one-class-at-a-time reference."""

import numpy as np
import pytest

from ovparts.evaluation import (
    BoundaryIoU,
    D2BoundaryConfusion,
    apply_rule,
    boundary_width,
    class_boundaries,
    d2_mask_to_boundary,
)


def cv2_style_boundary(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """detectron2 _mask_to_boundary as written: 1-px zero padding, 3x3 erosion repeated d times (border of the
    padded map = +inf, so only the padding ring erodes from outside), then mask - eroded."""
    h, w = mask.shape
    d = max(1, int(round(ratio * np.sqrt(h**2 + w**2))))
    padded = np.pad(mask.astype(np.int64), 1, constant_values=0)
    for _ in range(d):
        big = np.pad(padded, 1, constant_values=10**9)
        windows = [
            big[1 + dy : 1 + dy + padded.shape[0], 1 + dx : 1 + dx + padded.shape[1]]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ]
        padded = np.min(windows, axis=0)
    return mask.astype(np.int64) - padded[1:-1, 1:-1]


def test_boundary_width_follows_detectron2():
    assert boundary_width(512, 512) == round(0.02 * np.sqrt(2 * 512**2))
    assert boundary_width(10, 10) == 1  # never below one pixel


@pytest.mark.parametrize("shape", [(40, 40), (37, 61), (120, 90)])
def test_d2_boundary_matches_iterated_erosion(shape):
    rng = np.random.default_rng(shape[0])
    labels = rng.integers(0, 4, size=(shape[0] // 6 + 1, shape[1] // 6 + 1)).repeat(6, 0).repeat(6, 1)
    labels = labels[: shape[0], : shape[1]].astype(np.uint8)
    assert np.array_equal(d2_mask_to_boundary(labels), cv2_style_boundary(labels))


def test_d2_boundary_values_are_label_differences():
    # a 2|3 edge above an ignore band (N = 5): boundary values are differences, interiors are 0
    labels = np.full((40, 40), 2, np.uint8)
    labels[:, 20:] = 3
    labels[30:] = 5
    assert set(np.unique(d2_mask_to_boundary(labels)).tolist()) == {0, 1, 2, 3, 5}


def reference_class_boundary_iou(pred, gt, n, ratio=0.02):
    """One binary mask per class, boundary = mask minus its erosion (zero outside the image)."""
    inter = np.zeros(n)
    union = np.zeros(n)
    for c in range(n):
        g = (gt == c).astype(np.int64)
        p = ((pred == c) & (gt >= 0)).astype(np.int64)
        gb = cv2_style_boundary(g, ratio) > 0
        pb = cv2_style_boundary(p, ratio) > 0
        inter[c] += np.sum(gb & pb)
        union[c] += np.sum(gb | pb)
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def test_per_class_boundary_iou_matches_one_class_at_a_time():
    rng = np.random.default_rng(3)
    n = 4
    gt = rng.integers(0, n, size=(6, 8)).repeat(8, 0).repeat(8, 1)
    gt[:5] = -1
    pred = np.roll(gt, 3, axis=1)
    pred[gt < 0] = rng.integers(0, n, size=int((gt < 0).sum()))
    biou = BoundaryIoU(n)
    biou.update(pred, gt)
    assert np.allclose(biou.per_class(), reference_class_boundary_iou(pred, gt, n), equal_nan=True)


def test_perfect_prediction_has_boundary_iou_one_and_shift_lowers_it():
    gt = np.full((48, 48), -1)
    gt[8:40, 8:24] = 0
    gt[8:40, 24:40] = 1
    perfect = BoundaryIoU(2)
    perfect.update(gt, gt)
    assert np.allclose(perfect.per_class(), 1.0)
    shifted = BoundaryIoU(2)
    shifted.update(np.roll(gt, 4, axis=1), gt)
    assert np.all(shifted.per_class() < 1.0)


def test_class_boundaries_marks_image_border():
    edges = class_boundaries(np.zeros((20, 20), dtype=np.int64))
    assert edges[0].all() and not edges[10, 10]


def test_partclipseg_boundary_gives_class_zero_the_interiors():
    # class 0 has no GT pixel, yet PartCLIPSeg's whole-map boundary gives it an IoU: interiors map to 0
    gt = np.full((50, 50), -1)
    gt[5:45, 5:45] = 1
    b = D2BoundaryConfusion(2)
    b.update(gt, gt)
    conf = np.zeros((3, 3), dtype=np.int64)
    conf[1, 1] = 1600
    r = apply_rule("partclipseg", conf, [0], ["o's a", "o's b"], "oracle_obj", boundary_conf=b.matrix)
    assert np.isnan(r.iou[0])
    assert r.boundary_iou[0] == pytest.approx(100.0)
    assert "h-bIoU" in r.official


def test_d2_boundary_refuses_large_vocabularies():
    with pytest.raises(ValueError, match="255"):
        D2BoundaryConfusion(482)


def test_partclipseg_pred_all_boundary_unseen_mean_includes_background():
    conf = np.zeros((3, 3), dtype=np.int64)
    conf[0, 0] = conf[1, 1] = 4
    b = np.zeros((3, 3), dtype=np.int64)
    b[0, 0] = 1  # class 0: 1.0
    b[1, 1] = 1
    b[2, 1] = 1  # class 1 in the full matrix: 1 / (2 + 1 - 1) = 0.5; in the N x N block 1.0
    b[2, 2] = 3  # background entry: 3 / (3 + 4 - 3) = 0.75
    names = ["o's a", "o's b"]
    pred_all = apply_rule("partclipseg", conf, [0], names, "pred_all", boundary_conf=b)
    assert pred_all.official["Boundary-mIoU-unbase"] == pytest.approx(100 * (0.5 + 0.75) / 2)
    oracle = apply_rule("partclipseg", conf, [0], names, "oracle_obj", boundary_conf=b)
    assert oracle.official["Boundary-mIoU-unbase"] == pytest.approx(100.0)
