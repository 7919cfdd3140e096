"""AdamW with detectron2-style parameter groups, and the poly / cosine schedules with linear warm-up.

The official runs build their optimiser with detectron2's ``get_default_optimizer_params``: norm layers and
embedding tables get no weight decay, parameters under a named sub-module get a learning-rate multiplier
(CAT-Seg: CLIP x0.01; PartCATSeg: the DINO backbone x0.01). The schedule factor is a pure function of the step
so that a resumed run continues on exactly the same curve.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimSection, ScheduleSection

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LocalResponseNorm,
)


def _no_decay_ids(model: nn.Module, kinds: list[str]) -> set[int]:
    """Ids of parameters owned by norm layers / embedding tables (detectron2 WEIGHT_DECAY_NORM/EMBED = 0)."""
    ids: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_TYPES) or type(module).__name__.lower().endswith("norm")
        is_embedding = isinstance(module, nn.Embedding)
        if ("norm" in kinds and is_norm) or ("embedding" in kinds and is_embedding):
            ids.update(id(p) for p in module.parameters(recurse=False))
    return ids


def lr_multiplier(name: str, multipliers: dict[str, float]) -> float:
    """The factor of the first pattern (in recipe order) contained in the parameter's name, else 1."""
    for pattern, factor in multipliers.items():
        if pattern in name:
            return float(factor)
    return 1.0


def parameter_groups(model: nn.Module, optim: OptimSection) -> list[dict]:
    """Trainable parameters grouped by (lr factor, decay); frozen ones are left out entirely."""
    no_decay = _no_decay_ids(model, list(optim.no_decay))
    groups: dict[tuple[float, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        factor = lr_multiplier(name, optim.lr_multipliers)
        if factor == 0.0:
            parameter.requires_grad_(False)
            continue
        decays = id(parameter) not in no_decay
        group = groups.setdefault(
            (factor, decays),
            {
                "params": [],
                "names": [],
                "lr": optim.lr * factor,
                "weight_decay": optim.weight_decay if decays else 0.0,
            },
        )
        group["params"].append(parameter)
        group["names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, optim: OptimSection) -> torch.optim.AdamW:
    groups = parameter_groups(model, optim)
    for group in groups:
        group.pop("names")
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)


def lr_factor(step: int, total: int, schedule: ScheduleSection) -> float:
    """Multiplier of the base lr at optimiser step ``step`` (0-based) of ``total``.

    poly: (1 - step/total)^power (detectron2 WarmupPolyLR); cosine: half a cosine from 1 to ``min_lr_ratio``
    (WarmupCosineLR); constant: 1. Warm-up ramps linearly from ``warmup_factor`` over ``warmup_steps``.
    """
    progress = min(max(step, 0), total) / max(total, 1)
    if schedule.name == "poly":
        value = (1.0 - progress) ** schedule.power
    elif schedule.name == "cosine":
        value = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        value = 1.0
    value = schedule.min_lr_ratio + (1.0 - schedule.min_lr_ratio) * value
    if step < schedule.warmup_steps:
        alpha = step / schedule.warmup_steps
        value *= schedule.warmup_factor * (1.0 - alpha) + alpha
    return value


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, schedule: ScheduleSection
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, schedule))
