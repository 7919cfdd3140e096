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
