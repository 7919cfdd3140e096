"""Losses on hand-made cases whose values can be checked with a pencil."""

from __future__ import annotations

import math

import pytest
import torch

from ovparts.losses import catseg_bce_loss, one_hot_targets, resize_logits


def bce(x: float, y: float) -> float:
    p = 1 / (1 + math.exp(-x))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_one_hot_targets_zero_rows_for_ignore():
    labels = torch.tensor([[[0, 2], [255, 1]]])
    targets, valid = one_hot_targets(labels, 3)
    assert targets.shape == (1, 3, 2, 2)
    assert targets[0, :, 0, 0].tolist() == [1, 0, 0]
    assert targets[0, :, 0, 1].tolist() == [0, 0, 1]
    assert targets[0, :, 1, 0].tolist() == [0, 0, 0]
    assert valid.tolist() == [[[True, True], [False, True]]]


def test_labels_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        one_hot_targets(torch.tensor([[[0, 3]]]), 3)


def test_catseg_bce_faithful_keeps_ignored_pixels_as_negatives():
    # 2 classes, 1x2 image: pixel 0 is class 1, pixel 1 is ignored
    logits = torch.tensor([[[[2.0, -1.0]], [[0.5, 3.0]]]])  # (1, 2, 1, 2)
    labels = torch.tensor([[[1, 255]]])
    terms = [bce(2.0, 0), bce(-1.0, 0), bce(0.5, 1), bce(3.0, 0)]
    assert catseg_bce_loss(logits, labels).item() == pytest.approx(sum(terms) / 4, rel=1e-6)
    corrected = catseg_bce_loss(logits, labels, faithful=False).item()
    assert corrected == pytest.approx((bce(2.0, 0) + bce(0.5, 1)) / 2, rel=1e-6)


def test_catseg_bce_upsamples_logits_to_the_labels():
    logits = torch.full((1, 3, 2, 2), -4.0)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    assert resize_logits(logits, (8, 8)).shape == (1, 3, 8, 8)
    expected = (bce(-4.0, 1) + 2 * bce(-4.0, 0)) / 3
    assert catseg_bce_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_all_ignored_is_finite_when_corrected():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    labels = torch.full((1, 2, 2), 255)
    loss = catseg_bce_loss(logits, labels, faithful=False)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
