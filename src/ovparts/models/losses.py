"""Loss pieces every method shares: per-channel weighted binary cross-entropy and one-hot targets.

Conventions follow the official code of the methods: weighted BCE averaged over every selected element (not
normalised by the weights), with the background channel weighted 0.05. Each method's own losses live in
``ovparts/methods/<name>/losses.py`` and are built from these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKGROUND_WEIGHT = 0.05


def channel_weights(
    num_channels: int, background_weight: float = BACKGROUND_WEIGHT, device=None
) -> torch.Tensor:
    """(C,) ones with the last (background) channel down-weighted."""
    weights = torch.ones(num_channels, device=device)
    weights[-1] = background_weight
    return weights


def weighted_bce(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over all elements of w_c * BCE; ``logits``/``targets`` are (..., C) with channels last."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), weight=weights)


def one_hot_targets(
    labels: torch.Tensor, num_classes: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) ids -> (B, H, W, num_classes) one-hot and the (B, H, W) mask of labelled pixels."""
    labelled = (labels != ignore_index) & (labels >= 0) & (labels < num_classes)
    safe = torch.where(labelled, labels, torch.zeros_like(labels))
    return F.one_hot(safe.long(), num_classes) * labelled.unsqueeze(-1), labelled


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (B, T, h, w) logits to the label size (align_corners=False, as the official code)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def nearest_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) ids resized by nearest neighbour to the logits' size (a no-op when they match)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
