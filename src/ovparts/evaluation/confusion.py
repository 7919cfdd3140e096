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
        if gt.size == 0:
            return
        n = self.num_classes
        if gt.min() < -1 or gt.max() >= n:
            bad = gt[(gt < -1) | (gt >= n)]
            raise ValueError(f"ground truth ids {np.unique(bad)[:5].tolist()} are outside -1..{n - 1}")
        if pred.min() < -1 or pred.max() >= n:
            raise ValueError(f"predicted ids must lie in -1..{n - 1}")
        # Shift both by one so that -1 becomes index 0: one multiply-add per pixel, no masks, no copies of
        # the valid pixels. (p + 1) * (n + 1) + (g + 1) == p * (n + 1) + g + (n + 2).
        index = pred.astype(np.int64, copy=False) * (n + 1) + gt.astype(np.int64, copy=False)
        index += n + 2
        shifted = np.bincount(index.reshape(-1), minlength=(n + 1) * (n + 1)).reshape(n + 1, n + 1)
        self._add_shifted(shifted)

    def _add_shifted(self, shifted: np.ndarray) -> None:
        """Fold a matrix whose index 0 means -1 into the official layout (index N = ignore / no part).

        Column 0 holds the ground-truth-ignore pixels; whatever was predicted there, the official evaluators
        force the prediction to N, so the whole column lands in ``[N, N]``.
        """
        n = self.num_classes
        self.matrix[:n, :n] += shifted[1:, 1:]
        self.matrix[n, :n] += shifted[0, 1:]
        self.matrix[n, n] += shifted[:, 0].sum()

    def _update_torch(self, pred, gt) -> None:
        if pred.shape != gt.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} differs from ground truth shape {tuple(gt.shape)}"
            )
        if gt.numel() == 0:
            return
        n = self.num_classes
        gt = gt.long()
        pred = pred.to(gt.device).long()
        if int(gt.min()) < -1 or int(gt.max()) >= n:
            raise ValueError(f"ground truth ids are outside -1..{n - 1}")
        if int(pred.min()) < -1 or int(pred.max()) >= n:
            raise ValueError(f"predicted ids must lie in -1..{n - 1}")
        index = (pred * (n + 1) + gt + (n + 2)).reshape(-1)
        shifted = torch.bincount(index, minlength=(n + 1) * (n + 1)).reshape(n + 1, n + 1)
        self._add_shifted(shifted.cpu().numpy())

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
