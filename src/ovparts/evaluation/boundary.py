"""Boundary IoU, in two flavours that must never be confused.

``per_class``: the Boundary IoU of Cheng et al. (CVPR 2021). For each class, the boundary region of a binary
mask is the set of its pixels within distance d of its contour (d = 2% of the image diagonal, at least 1 px,
image border counted as contour); IoU of the ground-truth and predicted boundary regions, accumulated over the
split. We get every class's boundary from one min/max filter pass per label map: a pixel is interior for its
own class exactly when its (2d+1)^2 window lies inside the image and holds only that class.

``d2_compat``: what PartCLIPSeg reports as "BoundaryIoU". detectron2's ``_mask_to_boundary`` is applied to the
*whole label map* (ignore = N, cast to uint8): boundary = map - erode(map). The result holds label differences
and 0 for every interior pixel, so class 0 collects all interiors. It is reproduced only to compare with
published PartCLIPSeg numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def boundary_width(height: int, width: int, dilation_ratio: float = 0.02) -> int:
    """d = max(1, round(ratio * diagonal)) with Python's half-to-even rounding, as detectron2 computes it."""
    return max(1, int(round(dilation_ratio * math.sqrt(height**2 + width**2))))


def _window_min(values: torch.Tensor, d: int, pad_value: float) -> torch.Tensor:
    """Minimum over a (2d+1)^2 window, the outside of the map filled with ``pad_value`` (separable)."""
    x = F.pad(values[None, None], (d, d, d, d), value=pad_value)
    x = -F.max_pool2d(-x, kernel_size=(2 * d + 1, 1), stride=1)
    x = -F.max_pool2d(-x, kernel_size=(1, 2 * d + 1), stride=1)
    return x[0, 0]


def _window_max(values: torch.Tensor, d: int, pad_value: float) -> torch.Tensor:
    x = F.pad(values[None, None], (d, d, d, d), value=pad_value)
    x = F.max_pool2d(x, kernel_size=(2 * d + 1, 1), stride=1)
    x = F.max_pool2d(x, kernel_size=(1, 2 * d + 1), stride=1)
    return x[0, 0]


def d2_mask_to_boundary(label_map: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """detectron2 ``SemSegEvaluator._mask_to_boundary`` on a uint8 map: ``map - erode(map)``, int64 result.

    cv2.erode of the 1-px zero-padded map, repeated d times with a 3x3 kernel, equals a (2d+1)^2 window minimum
    with zeros outside the image; that is what we compute.
    """
    labels = np.asarray(label_map).astype(np.uint8)
    d = boundary_width(*labels.shape, dilation_ratio)
    eroded = _window_min(torch.from_numpy(labels.astype(np.float32)), d, 0.0).numpy().astype(np.uint8)
    return (labels - eroded).astype(np.int64)


def class_boundaries(label_map: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """Bool map: True where a pixel lies in the boundary region of its own class (Cheng et al. 2021)."""
    labels = torch.from_numpy(np.asarray(label_map).astype(np.float32))
    d = boundary_width(*labels.shape, dilation_ratio)
    sentinel = float(labels.min()) - 1.0  # outside the image is "another class"
    low = _window_min(labels, d, sentinel)
    high = _window_max(labels, d, sentinel)
    interior = (low == labels) & (high == labels)
    return (~interior).numpy()


def _prepare(pred: np.ndarray, gt: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Official encoding: ignore/no-part -> N, prediction forced to N where the ground truth is ignore."""
    gt = np.asarray(gt, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    ignore = gt < 0
    gt_n = np.where(ignore, n, gt)
    pred_n = np.where(ignore | (pred < 0), n, pred)
    return pred_n, gt_n


class D2BoundaryConfusion:
    """PartCLIPSeg's boundary matrix: (N+1)^2 bincount of whole-map d2 boundaries. Needs N < 255."""

    def __init__(self, num_classes: int, dilation_ratio: float = 0.02) -> None:
        if num_classes >= 255:
            raise ValueError("the d2-compatible boundary IoU casts label maps to uint8 and needs N < 255")
        self.num_classes = num_classes
        self.dilation_ratio = dilation_ratio
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        n = self.num_classes
        pred_n, gt_n = _prepare(pred, gt, n)
        b_gt = d2_mask_to_boundary(gt_n, self.dilation_ratio)
        b_pred = d2_mask_to_boundary(pred_n, self.dilation_ratio)
        counts = np.bincount(((n + 1) * b_pred + b_gt).reshape(-1), minlength=(n + 1) ** 2)
        self.matrix += counts.reshape(n + 1, n + 1)


class BoundaryIoU:
    """Per-class Boundary IoU accumulated over a split: intersection and union counts per class."""

    def __init__(self, num_classes: int, dilation_ratio: float = 0.02) -> None:
        self.num_classes = num_classes
        self.dilation_ratio = dilation_ratio
        self.intersection = np.zeros(num_classes, dtype=np.int64)
        self.gt_boundary = np.zeros(num_classes, dtype=np.int64)
        self.pred_boundary = np.zeros(num_classes, dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        n = self.num_classes
        pred_n, gt_n = _prepare(pred, gt, n)
        gt_edge = class_boundaries(gt_n, self.dilation_ratio) & (gt_n < n)
        pred_edge = class_boundaries(pred_n, self.dilation_ratio) & (pred_n < n)
        both = gt_edge & pred_edge & (gt_n == pred_n)
        self.gt_boundary += np.bincount(gt_n[gt_edge], minlength=n)[:n]
        self.pred_boundary += np.bincount(pred_n[pred_edge], minlength=n)[:n]
        self.intersection += np.bincount(gt_n[both], minlength=n)[:n]

    def per_class(self) -> np.ndarray:
        """Boundary IoU per class in [0, 1], NaN where neither boundary has a pixel."""
        union = self.gt_boundary + self.pred_boundary - self.intersection
        out = np.full(self.num_classes, np.nan)
        np.divide(self.intersection, union, out=out, where=union > 0)
        return out
