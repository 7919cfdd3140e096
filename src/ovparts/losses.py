"""Training losses, each a small pure function of logits and targets.

Conventions: logits are (B, T, h, w) per-class scores before the sigmoid; label maps are (B, H, W) integer
class ids with ``ignore_index`` for unlabelled pixels. Functions that reproduce an official quirk take
``faithful=True`` for the published behaviour and document the corrected one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize (B, T, h, w) logits to the label size (align_corners=False, as the official code)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def one_hot_targets(labels: Tensor, num_classes: int, ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """One-hot (B, T, H, W) float targets and the (B, H, W) mask of labelled pixels.

    Ignored pixels get an all-zero target row. Any other label outside [0, num_classes) is an error rather
    than silently a negative everywhere, because it means the label map and the vocabulary disagree.
    """
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        found = sorted(set(labels[bad].unique().tolist()))[:5]
        raise ValueError(
            f"Label ids {found} are outside the vocabulary of {num_classes} classes and are not the "
            f"ignore label {ignore_index}."
        )
    safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
    targets = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(torch.float32)
    return targets * valid.unsqueeze(1), valid


def catseg_bce_loss(logits: Tensor, labels: Tensor, ignore_index: int = 255, faithful: bool = True) -> Tensor:
    """CAT-Seg's training loss: per-class binary cross-entropy against one-hot labels.

    The logits are first resized to the label size. With ``faithful=True`` (the official code) ignored
    pixels count as negatives for every class and stay in the mean over pixels x classes; with
    ``faithful=False`` they are left out of both the sum and the count, which is what "ignore" usually means.
    """
    logits = resize_logits(logits, tuple(labels.shape[-2:]))
    targets, valid = one_hot_targets(labels, logits.shape[1], ignore_index)
    per_element = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    if faithful:
        return per_element.mean()
    weight = valid.unsqueeze(1).to(per_element.dtype).expand_as(per_element)
    return (per_element * weight).sum() / weight.sum().clamp_min(1.0)
