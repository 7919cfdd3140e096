import math

import torch

from ovparts.losses import (
    catseg_bce_loss,
    clipseg_baseline_loss,
    one_hot_targets,
    resize_logits,
    weighted_bce,
)


def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_weighted_bce_matches_hand_computation():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    weights = torch.tensor([1.0, 0.05])
    expected = (bce(2, 1) + 0.05 * bce(-1, 0) + bce(0.5, 0) + 0.05 * bce(0, 1)) / 4
    assert math.isclose(weighted_bce(logits, targets, weights).item(), expected, rel_tol=1e-6)


def test_one_hot_targets_ignore_and_out_of_range():
    labels = torch.tensor([[[0, 255], [1, 7]]])
    onehot, labelled = one_hot_targets(labels, 2, ignore_index=255)
    assert labelled.tolist() == [[[True, False], [True, False]]]
    assert onehot[0, 0, 0].tolist() == [1, 0] and onehot[0, 1, 0].tolist() == [0, 1]
    assert onehot[0, 0, 1].sum() == 0


def test_clipseg_baseline_loss_background_on_unlabelled_pixels():
    # one image, 1x2 pixels, 1 part + background; pixel 0 labelled part 0, pixel 1 ignore
    logits = torch.tensor([[[[1.0, -2.0]], [[0.0, 3.0]]]])  # (B=1, C=2, H=1, W=2)
    labels = torch.tensor([[[0, 255]]])
    expected = (bce(1.0, 1) + bce(-2.0, 0) + 0.05 * bce(0.0, 0) + 0.05 * bce(3.0, 1)) / 4
    value = clipseg_baseline_loss(logits, labels, ignore_index=255)
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_catseg_bce_faithful_keeps_ignored_pixels_as_negatives():
    # 2 classes, 1x2 image: pixel 0 is class 1, pixel 1 is ignored
    logits = torch.tensor([[[[2.0, -1.0]], [[0.5, 3.0]]]])  # (1, 2, 1, 2)
    labels = torch.tensor([[[1, 255]]])
    terms = [bce(2.0, 0), bce(-1.0, 0), bce(0.5, 1), bce(3.0, 0)]
    assert math.isclose(catseg_bce_loss(logits, labels).item(), sum(terms) / 4, rel_tol=1e-6)
    corrected = catseg_bce_loss(logits, labels, faithful=False).item()
    assert math.isclose(corrected, (bce(2.0, 0) + bce(0.5, 1)) / 2, rel_tol=1e-6)


def test_catseg_bce_upsamples_logits_to_the_labels():
    logits = torch.full((1, 3, 2, 2), -4.0)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    assert resize_logits(logits, (8, 8)).shape == (1, 3, 8, 8)
    expected = (bce(-4.0, 1) + 2 * bce(-4.0, 0)) / 3
    assert math.isclose(catseg_bce_loss(logits, labels).item(), expected, rel_tol=1e-6)


def test_catseg_bce_all_ignored_is_finite_when_corrected():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    labels = torch.full((1, 2, 2), 255)
    loss = catseg_bce_loss(logits, labels, faithful=False)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
