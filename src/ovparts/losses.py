"""Training losses, each a small pure function of logits and label maps (no module state).

Conventions follow the official code paths named in each function's docstring: per-channel weighted binary
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
# PartCLIPSeg (Choi et al., NeurIPS 2024): object-specific parts rebuilt from generalized parts and objects,
# supervised at three levels, plus two losses on the last decoder block's attention. ``faithful=True``
# reproduces the official code's quirks (see docs/partclipseg.md); the default corrects them.
# ---------------------------------------------------------------------------------------------------------

ATTENTION_THRESHOLD = 0.3
SMOOTHING_SIGMA = 0.5
SEPARATION_TEMPERATURE = 0.05


def partclipseg_segmentation_losses(
    part_object_logits: torch.Tensor,
    class_logits: torch.Tensor,
    part_labels: torch.Tensor,
    object_labels: torch.Tensor,
    part_to_generalized: torch.Tensor,
    num_generalized: int,
    ignore_index: int = 255,
    background_weight: float = BACKGROUND_WEIGHT,
    faithful: bool = False,
) -> dict[str, torch.Tensor]:
    """The three weighted-BCE terms of PartCLIPSeg at network resolution.

    ``part_object_logits`` (B, T+1, H, W): object-specific parts then background. ``class_logits``
    (B, P+O+1, H, W): ``num_generalized`` generalized parts, part-bearing objects, background.
    ``part_labels`` hold object-specific part ids and ``object_labels`` part-object ids; any other value
    (``ignore_index``, -1) is unlabelled, and "no object" is the background target. Returns ``part_object``
    (L_partobj), ``part`` (L_part) and ``object`` (L_obj).

    The official code guards the background term of L_partobj with "some pixel has an object" instead of
    "some pixel has none"; an image that is object everywhere then averages an empty set (NaN, which the
    official total turns into a zero loss for the whole batch). ``faithful=True`` keeps that guard.
    """
    num_parts = part_object_logits.shape[1] - 1
    num_objects = class_logits.shape[1] - 1 - num_generalized
    parts, has_part = one_hot_targets(part_labels, num_parts, ignore_index)
    objects, has_object = one_hot_targets(object_labels, num_objects, ignore_index)
    no_object = (~has_object).unsqueeze(-1).to(parts.dtype)
    z = part_object_logits.permute(0, 2, 3, 1)
    y = class_logits.permute(0, 2, 3, 1)
    z_targets = torch.cat([parts, no_object], dim=-1)
    z_weights = channel_weights(num_parts + 1, background_weight, z.device)
    zero = z.new_zeros(())

    part_object = zero
    if has_part.any():
        part_object = part_object + weighted_bce(z[has_part], z_targets[has_part], z_weights)
    background_guard = has_object.any() if faithful else (~has_object).any()
    if background_guard:
        part_object = part_object + weighted_bce(z[~has_object], z_targets[~has_object], z_weights)

    part = zero
    if has_part.any():
        safe = torch.where(has_part, part_labels, torch.zeros_like(part_labels)).long()
        generalized = part_to_generalized.to(safe.device)[safe]
        targets = F.one_hot(generalized, num_generalized)
        part = weighted_bce(y[..., :num_generalized][has_part], targets[has_part])

    object_targets = torch.cat([objects, no_object], dim=-1)
    object_weights = channel_weights(num_objects + 1, background_weight, y.device)
    obj = weighted_bce(y[..., num_generalized:], object_targets, object_weights)
    return {"part_object": part_object, "part": part, "object": obj}


def gaussian_kernel(size: int = 3, sigma: float = SMOOTHING_SIGMA) -> torch.Tensor:
    """(size, size) kernel in Attend-and-Excite's form exp(-((x - mu) / (2 sigma))^2), summing to 1.

    Note the 2*sigma (not sqrt(2)*sigma) in the exponent: PartCLIPSeg borrows this kernel, so sigma 0.5 gives
    the 1-D weights (0.212, 0.576, 0.212) rather than a textbook sigma-0.5 Gaussian.
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-((x / (2 * sigma)) ** 2))
    kernel = line[:, None] * line[None, :]
    return (kernel / kernel.sum()).float()


def smooth(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(..., h, w) maps reflect-padded and convolved with ``kernel``; the output keeps the input size."""
    shape = maps.shape
    pad = kernel.shape[-1] // 2
    flat = F.pad(maps.reshape(-1, 1, *shape[-2:]), (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(flat, kernel.to(maps)[None, None]).reshape(shape)


def part_attention_map(attention: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """(R, R) attention (queries x keys, CLS dropped) and an (h, w) mask of a part -> (h, w) key map.

    The official code averages the masked rows over *all* R queries (zeros included), so a small part gets
    a proportionally small map; only its shape matters after the min-max normalisation, but the
    enhancement loss reads the unnormalised peak.
    """
    flat = query_mask.reshape(-1).to(attention.dtype)
    return (flat @ attention / flat.numel()).reshape(query_mask.shape)


def _resize_nearest(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(mask[None, None].float(), size=grid, mode="nearest")[0, 0]


def attention_control_losses(
    class_attention: torch.Tensor,
    part_index: torch.Tensor,
    object_index: torch.Tensor,
    part_to_object: torch.Tensor,
    part_labels: torch.Tensor,
    object_labels: torch.Tensor,
    grid: tuple[int, int],
    gamma: float = ATTENTION_THRESHOLD,
    sigma: float = SMOOTHING_SIGMA,
    ignore_index: int = 255,
    faithful: bool = False,
    temperature: float = SEPARATION_TEMPERATURE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PartCLIPSeg's separation and enhancement losses, (L_sep, L_enh).

    ``class_attention`` (B, N, 1+h*w, 1+h*w): head-averaged self-attention of the last decoder block per
    conditional class, CLS first. The map of object-specific part t is the mean of its generalized part's
    and its object's maps, ``part_index[t]`` and ``object_index[t]`` (indices into N). ``part_labels`` /
    ``object_labels`` (B, H, W): object-specific part ids / part-object ids (``part_to_object`` maps one to
    the other); other values are unlabelled.

    For each object in an image and each of its parts: average the attention rows of the part's pixels,
    smooth it (3x3, reflect padding), and threshold its min-max normalised version at ``gamma``. L_sep is the
    share of the object's covered pixels claimed by more than one part; L_enh is one minus the weakest
    part's peak smoothed attention.

    ``faithful=True`` is the official code: the separation threshold is a hard step (so L_sep has no
    gradient), every part present in the image counts for every object, the last object id is dropped
    when no pixel is unlabelled (``unique()[:-1]``), and the sums are divided by objects x batch size.
    Otherwise the step is ``sigmoid((x - gamma) / temperature)``, an object counts only its own parts, and
    the losses are means over objects.
    """
    batch = class_attention.shape[0]
    length = grid[0] * grid[1]
    if class_attention.shape[-1] != length + 1:
        raise ValueError(
            f"Attention over {class_attention.shape[-1]} tokens does not fit the grid {grid} + CLS."
        )
    kernel = gaussian_kernel(3, sigma).to(class_attention)
    num_objects_total = 0
    separation = class_attention.new_zeros(())
    enhancement = class_attention.new_zeros(())
    part_to_object = part_to_object.tolist()
    for b in range(batch):
        labels_b, objects_b = part_labels[b], object_labels[b]
        has_object = (objects_b >= 0) & (objects_b != ignore_index)
        object_ids = objects_b[has_object].unique().tolist()
        if faithful and bool(has_object.all()):
            object_ids = object_ids[:-1]  # unique()[:-1] meant to drop the ignore label, which was absent
        present = labels_b[(labels_b >= 0) & (labels_b != ignore_index)].unique().tolist()
        maps: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for o in object_ids:
            parts = present if faithful else [t for t in present if part_to_object[t] == o]
            if not parts:
                continue
            num_objects_total += 1
            object_mask = _resize_nearest(objects_b == o, grid)
            weakest_peak = class_attention.new_ones(())
            coverage = torch.zeros(grid, dtype=class_attention.dtype, device=class_attention.device)
            for t in parts:
                if t not in maps:
                    merged = (class_attention[b, part_index[t]] + class_attention[b, object_index[t]]) / 2
                    raw = part_attention_map(merged[1:, 1:], _resize_nearest(labels_b == t, grid))
                    normalised = (raw - raw.min()) / (raw.max() - raw.min() + 1e-9)
                    maps[t] = (smooth(raw, kernel), smooth(normalised, kernel))
                smoothed, smoothed_normalised = maps[t]
                weakest_peak = torch.minimum(weakest_peak, smoothed.max())
                if faithful:
                    claimed = (smoothed_normalised > gamma).to(coverage.dtype)
                else:
                    claimed = torch.sigmoid((smoothed_normalised - gamma) / temperature)
                coverage = coverage + object_mask * claimed
            overlap = (coverage - 1).clamp(0, 1).sum()  # = |{U > 1}| for 0/1 masks
            covered = coverage.clamp(0, 1).sum()  # = |{U >= 1}| for 0/1 masks
            separation = separation + overlap / (covered + 1e-9)
            enhancement = enhancement + (1 - weakest_peak)
    divisor = max(num_objects_total, 1) * (batch if faithful else 1)
    return separation / divisor, enhancement / divisor


def partclipseg_total_loss(
    terms: dict[str, torch.Tensor],
    object_weight: float = 1.0,
    part_weight: float = 1.0,
    separation_weight: float = 0.1,
    enhancement_weight: float = 0.01,
    faithful: bool = False,
) -> torch.Tensor:
    """L_partobj + w_obj L_obj + w_part L_part (+ w_sep L_sep + w_enh L_enh when present).

    The official code replaces a NaN/Inf total by zero (``faithful``); otherwise a NaN propagates, so a
    broken batch is noticed instead of silently skipped.
    """
    total = terms["part_object"] + object_weight * terms["object"] + part_weight * terms["part"]
    if "separation" in terms:
        total = total + separation_weight * terms["separation"]
    if "enhancement" in terms:
        total = total + enhancement_weight * terms["enhancement"]
    return torch.nan_to_num(total, nan=0.0, posinf=0.0, neginf=0.0) if faithful else total


# PartCATSeg (official ``baselines/partcatseg.py``, training branch). Logits are (B, C, H, W) at the label size; label maps are (B, H, W)
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
