"""Training losses, each a small pure function of logits and label maps (no module state).

Conventions follow the official code paths quoted in the design notes: per-channel weighted binary
cross-entropy averaged over every selected element (not normalised by the weights), with the background
channel weighted 0.05.
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


def clipseg_baseline_loss(
    logits: torch.Tensor,
    part_labels: torch.Tensor,
    ignore_index: int,
    background_weight: float = BACKGROUND_WEIGHT,
) -> torch.Tensor:
    """OV-PARTS CLIPSeg baseline: BCE over all pixels and T+1 channels (background last).

    Targets are one-hot on labelled pixels; the background channel is 1 on every unlabelled pixel, the
    ignore label included, as the official baseline does.
    """
    num_parts = logits.shape[1] - 1
    parts, labelled = one_hot_targets(part_labels, num_parts, ignore_index)
    targets = torch.cat([parts, (~labelled).unsqueeze(-1).to(parts.dtype)], dim=-1)
    weights = channel_weights(logits.shape[1], background_weight, logits.device)
    return weighted_bce(logits.permute(0, 2, 3, 1), targets, weights)


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (B, T, h, w) logits to the label size (align_corners=False, as the official code)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


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
