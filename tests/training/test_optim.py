import math

import pytest
import torch
from torch import nn

from ovparts.training.config import OptimSection, ScheduleSection
from ovparts.training.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4))
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def _group_of(groups, parameter):
    return next(g for g in groups if any(p is parameter for p in g["params"]))


def test_groups_follow_detectron2_rules():
    model = Toy()
    optim = OptimSection(lr=1e-3, weight_decay=0.1, lr_multipliers={"backbone": 0.01})
    groups = parameter_groups(model, optim)
    embedding = _group_of(groups, model.backbone[0].weight)
    norm = _group_of(groups, model.backbone[1].weight)
    head = _group_of(groups, model.head.weight)
    assert embedding["weight_decay"] == 0 and norm["weight_decay"] == 0
    assert embedding["lr"] == pytest.approx(1e-5) and head["lr"] == pytest.approx(1e-3)
    assert head["weight_decay"] == 0.1 and _group_of(groups, model.head.bias)["weight_decay"] == 0.1
    grouped = [p for g in groups for p in g["params"]]
    assert all(p is not model.frozen.weight for p in grouped)
    assert len(grouped) == sum(1 for p in model.parameters() if p.requires_grad)


def test_zero_multiplier_freezes():
    model = Toy()
    parameter_groups(model, OptimSection(lr_multipliers={"backbone": 0.0}))
    assert not model.backbone[0].weight.requires_grad


def test_schedules():
    poly = ScheduleSection(name="poly", power=0.9)
    assert lr_factor(0, 100, poly) == 1.0
    assert lr_factor(50, 100, poly) == pytest.approx(0.5**0.9)
    assert lr_factor(100, 100, poly) == 0.0
    cosine = ScheduleSection(name="cosine")
    assert lr_factor(50, 100, cosine) == pytest.approx(0.5)
    floor = ScheduleSection(name="cosine", min_lr_ratio=0.1)
    assert lr_factor(100, 100, floor) == pytest.approx(0.1)
    warm = ScheduleSection(name="constant", warmup_steps=10, warmup_factor=0.001)
    assert lr_factor(0, 100, warm) == pytest.approx(0.001)
    assert lr_factor(5, 100, warm) == pytest.approx(0.001 * 0.5 + 0.5)
    assert lr_factor(10, 100, warm) == 1.0
    assert math.isclose(lr_factor(150, 100, poly), 0.0)


def test_scheduler_drives_adamw():
    model = Toy()
    optimizer = build_optimizer(model, OptimSection(lr=1.0))
    assert isinstance(optimizer, torch.optim.AdamW)
    scheduler = build_scheduler(optimizer, 4, ScheduleSection(name="poly", power=1.0))
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1.0, 0.75, 0.5, 0.25])
