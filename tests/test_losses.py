import math

import torch

from ovparts.losses import clipseg_baseline_loss, one_hot_targets, weighted_bce


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
