"""CLIPSeg's training loss (the OV-PARTS baseline): weighted BCE over the parts and a background channel."""

from __future__ import annotations

import torch

from ...models.losses import BACKGROUND_WEIGHT, channel_weights, one_hot_targets, weighted_bce


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
