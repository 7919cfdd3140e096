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


# ---------------------------------------------------------------------------------------------------------
# PartCATSeg (design notes section 2.6). Logits are (B, C, H, W) at the label size; label maps are (B, H, W)
# ids into the channel space of the logits they supervise, ``ignore_index`` where unlabelled.


def _channels_last(logits: torch.Tensor) -> torch.Tensor:
    return logits.permute(0, 2, 3, 1)


def partcatseg_part_loss(
    part_logits: torch.Tensor, part_labels: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    """Stage-A generalized-part term: BCE over the part channels, on part-labelled pixels only.

    ``part_logits`` (B, P_g, H, W) holds no background channel; ``part_labels`` (B, H, W) are generalized-part
    ids. Zero (still differentiable) when no pixel has a part label.
    """
    targets, labelled = one_hot_targets(part_labels, part_logits.shape[1], ignore_index)
    if not labelled.any():
        return part_logits.sum() * 0.0
    return weighted_bce(_channels_last(part_logits)[labelled], targets[labelled])


def partcatseg_object_loss(
    object_logits: torch.Tensor,
    object_labels: torch.Tensor,
    ignore_index: int,
    background_weight: float = BACKGROUND_WEIGHT,
) -> torch.Tensor:
    """Stage-A object term: BCE over the object channels + background (last), on every pixel.

    ``object_labels`` (B, H, W) are ids of objects that have parts; every other pixel (true background,
    objects without parts, padding) is a background target. The background channel is weighted 0.05.
    """
    num_objects = object_logits.shape[1] - 1
    objects, labelled = one_hot_targets(object_labels, num_objects, ignore_index)
    targets = torch.cat([objects, (~labelled).unsqueeze(-1).to(objects.dtype)], dim=-1)
    weights = channel_weights(object_logits.shape[1], background_weight, object_logits.device)
    return weighted_bce(_channels_last(object_logits), targets, weights)


def partcatseg_specific_loss(
    logits: torch.Tensor,
    part_labels: torch.Tensor,
    object_labels: torch.Tensor,
    ignore_index: int,
    background_weight: float = BACKGROUND_WEIGHT,
    faithful: bool = True,
) -> torch.Tensor:
    """Stage-B object-specific part term: two BCE means over the T_s parts + background (last) channels.

    Targets: one-hot object-specific part where ``part_labels`` has one; background = 1 where
    ``object_labels`` is ignore (no part-bearing object). The first mean runs over part-labelled pixels, the
    second over no-object pixels; background is weighted 0.05 in both. ``faithful=True`` adds the second mean
    only when the batch also has object pixels (the official condition); ``False`` whenever it has
    no-object pixels.
    """
    num_parts = logits.shape[1] - 1
    parts, labelled = one_hot_targets(part_labels, num_parts, ignore_index)
    no_object = (object_labels == ignore_index) | (object_labels < 0)
    targets = torch.cat([parts, no_object.unsqueeze(-1).to(parts.dtype)], dim=-1)
    weights = channel_weights(logits.shape[1], background_weight, logits.device)
    flat = _channels_last(logits)
    loss = logits.sum() * 0.0
    if labelled.any():
        loss = loss + weighted_bce(flat[labelled], targets[labelled], weights)
    has_objects = bool((~no_object).any())
    if no_object.any() and (has_objects or not faithful):
        loss = loss + weighted_bce(flat[no_object], targets[no_object], weights)
    return loss


def jensen_shannon(p: torch.Tensor, q: torch.Tensor, dim: int, eps: float = 1e-10) -> torch.Tensor:
    """Mean Jensen-Shannon divergence between distributions along ``dim`` (``eps`` added to both, as official)."""
    p, q = p + eps, q + eps
    m = 0.5 * (p + q)
    kl_p = (p * (p.log() - m.log())).sum(dim=dim)
    kl_q = (q * (q.log() - m.log())).sum(dim=dim)
    return (0.5 * kl_p + 0.5 * kl_q).mean()


def compositional_loss(
    object_cost: torch.Tensor,
    specific_cost: torch.Tensor,
    specific_to_object: torch.Tensor,
    eps: float = 1e-10,
) -> torch.Tensor:
    """PartCATSeg's compositional term: object-specific parts, summed per object, should agree with objects.

    ``object_cost`` (B, P, O+1, h, w): stage-A cosine costs of the part-bearing objects + background (P
    templates); ``specific_cost`` (B, P, T_s+1, h, w): stage-B costs of the object-specific parts +
    background; ``specific_to_object`` (T_s,): the object of each part. Both costs are averaged over
    templates and soft-maxed over classes (no temperature, as official); the part distribution is summed into
    its objects (background into background) and compared with the object distribution by Jensen-Shannon,
    averaged over batch and pixels.
    """
    b, _, num_objects, h, w = object_cost.shape
    # eps is added after each softmax and again inside the divergence, exactly as the official code does
    q = object_cost.mean(dim=1).reshape(b, num_objects, h * w).softmax(dim=1) + eps
    r = specific_cost.mean(dim=1).reshape(b, specific_cost.shape[2], h * w).softmax(dim=1) + eps
    background = torch.full((1,), num_objects - 1, dtype=torch.long, device=r.device)
    index = torch.cat([specific_to_object.to(r.device).long(), background])
    p = torch.zeros_like(q).index_add(1, index, r)
    return jensen_shannon(p, q, dim=1, eps=eps)
