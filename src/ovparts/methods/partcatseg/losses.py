"""PartCATSeg's losses (official ``baselines/partcatseg.py``, training branch).

Logits are (B, C, H, W) at the label size; label maps are (B, H, W) ids into the channel space of the logits
they supervise, ``ignore_index`` where unlabelled.
"""

from __future__ import annotations

import torch

from ...models.losses import BACKGROUND_WEIGHT, channel_weights, one_hot_targets, weighted_bce


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
