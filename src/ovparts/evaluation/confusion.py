"""A streaming (N+1)x(N+1) confusion matrix laid out exactly as the three official evaluators lay it out.

Rows are predictions, columns ground truth. Index N plays two roles, as in the official code: as a ground-truth
column it is "ignore" (no part label), as a prediction row it is "no part" (background in Pred-All). Every
official evaluator forces the prediction to N wherever the ground truth is ignore, so those pixels all land in
``matrix[N, N]``; we add their count there without spending a bincount on them. Every named averaging rule
(``rules.py``) is then a pure function of this one matrix.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover - torch is a core dependency
    torch = None


class ConfusionMatrix:
    """Accumulates ``matrix[pred, gt]`` over a whole split (dataset-level IoU, not a mean of per-image IoUs).

    ``update`` takes label maps of any shape: ground truth with -1 for ignore, predictions with -1 for "no
    part". Both may be NumPy arrays or torch tensors (CPU or GPU); values >= N raise.
    """

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be positive")
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, pred, gt) -> None:
        """Add one label map (or a batch of them); pixels whose ground truth is ignore go to ``[N, N]``."""
        if torch is not None and (isinstance(pred, torch.Tensor) or isinstance(gt, torch.Tensor)):
            self._update_torch(torch.as_tensor(pred), torch.as_tensor(gt))
            return
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
        n = self.num_classes
        gt_flat = gt.reshape(-1)
        pred_flat = pred.reshape(-1)
        valid = (gt_flat >= 0) & (gt_flat < n)
        bad_gt = ~valid & (gt_flat != -1)
        if bad_gt.any():
            raise ValueError(
                f"ground truth ids {np.unique(gt_flat[bad_gt])[:5].tolist()} are outside -1..{n - 1}"
            )
        g = gt_flat[valid].astype(np.int64, copy=False)
        p = pred_flat[valid].astype(np.int64, copy=False)
        if p.size and (p.max() >= n or p.min() < -1):
            raise ValueError(f"predicted ids must lie in -1..{n - 1}")
        p = np.where(p < 0, n, p)
        counts = np.bincount(p * (n + 1) + g, minlength=(n + 1) * (n + 1))
        self.matrix += counts.reshape(n + 1, n + 1)
        self.matrix[n, n] += int(gt_flat.size - g.size)

    def _update_torch(self, pred, gt) -> None:
        if pred.shape != gt.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} differs from ground truth shape {tuple(gt.shape)}"
            )
        n = self.num_classes
        gt_flat = gt.reshape(-1).long()
        pred_flat = pred.reshape(-1).to(gt_flat.device).long()
        valid = (gt_flat >= 0) & (gt_flat < n)
        if bool(((~valid) & (gt_flat != -1)).any()):
            raise ValueError(f"ground truth ids are outside -1..{n - 1}")
        g = gt_flat[valid]
        p = pred_flat[valid]
        if p.numel() and (int(p.max()) >= n or int(p.min()) < -1):
            raise ValueError(f"predicted ids must lie in -1..{n - 1}")
        p = torch.where(p < 0, torch.full_like(p, n), p)
        counts = torch.bincount(p * (n + 1) + g, minlength=(n + 1) * (n + 1))
        self.matrix += counts.cpu().numpy().reshape(n + 1, n + 1)
        self.matrix[n, n] += int(gt_flat.numel() - g.numel())

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix (e.g. from another worker); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix
        return self

    # Convenience views shared by the rules -------------------------------------------------------
    def per_class_iou(self) -> np.ndarray:
        """IoU of each part class on the N x N block (NaN where a class has neither GT nor prediction)."""
        return block_iou(self.matrix[:-1, :-1])


def block_iou(block: np.ndarray) -> np.ndarray:
    """tp / (pos_gt + pos_pred - tp) per class of a square rows=pred, cols=gt block; NaN where the union is 0."""
    tp = np.diag(block).astype(np.float64)
    union = block.sum(0) + block.sum(1) - tp
    iou = np.full(tp.shape, np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    return iou
