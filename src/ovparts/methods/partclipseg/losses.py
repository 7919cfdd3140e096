"""PartCLIPSeg's losses (Choi et al., NeurIPS 2024).

Object-specific parts are rebuilt from generalized parts and objects and supervised at three levels, plus
two losses on the last decoder block's attention. ``faithful=True`` reproduces the official code's quirks
(see docs/partclipseg.md); the default corrects them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.losses import BACKGROUND_WEIGHT, channel_weights, one_hot_targets, weighted_bce

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
