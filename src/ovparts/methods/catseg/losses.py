"""CAT-Seg's training loss: per-class BCE against one-hot labels at the label resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.losses import one_hot_targets, resize_logits, weighted_bce


def catseg_bce_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255, faithful: bool = True
) -> torch.Tensor:
    """CAT-Seg's training loss: per-class binary cross-entropy against one-hot labels, no background channel.

    The (B, T, h, w) logits are first resized to the (B, H, W) label size. With ``faithful=True`` (the
    official code) ignored pixels count as negatives for every class and stay in the mean over
    pixels x classes; with ``faithful=False`` they are left out of both the sum and the count, which is what
    "ignore" usually means.
    """
    logits = resize_logits(logits, tuple(labels.shape[-2:])).permute(0, 2, 3, 1)
    targets, labelled = one_hot_targets(labels, logits.shape[-1], ignore_index)
    if faithful:
        return weighted_bce(logits, targets)
    per_element = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    weight = labelled.unsqueeze(-1).to(per_element.dtype).expand_as(per_element)
    return (per_element * weight).sum() / weight.sum().clamp_min(1.0)
