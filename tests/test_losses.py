import math

import torch

from ovparts.losses import (
    catseg_bce_loss,
    clipseg_baseline_loss,
    compositional_loss,
    jensen_shannon,
    one_hot_targets,
    partcatseg_object_loss,
    partcatseg_part_loss,
    partcatseg_specific_loss,
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


# ---------------------------------------------------------------------------------------------------------
# PartCATSeg (design notes section 2.6)


def test_partcatseg_part_loss_only_on_part_labelled_pixels():
    # 2 generalized parts, 1x2 image: pixel 0 is part 1, pixel 1 has no part label
    logits = torch.tensor([[[[0.5, 9.0]], [[-1.0, -9.0]]]])
    labels = torch.tensor([[[1, 255]]])
    expected = (bce(0.5, 0) + bce(-1.0, 1)) / 2
    assert math.isclose(partcatseg_part_loss(logits, labels, 255).item(), expected, rel_tol=1e-6)
    none = partcatseg_part_loss(logits.requires_grad_(), torch.full((1, 1, 2), 255), 255)
    assert none.item() == 0.0 and none.requires_grad


def test_partcatseg_object_loss_background_on_every_unlabelled_pixel():
    # 2 objects + background, 1x2 image: pixel 0 is object 0, pixel 1 is background (ignore label)
    logits = torch.tensor([[[[1.0, 0.0]], [[-2.0, 1.5]], [[0.3, -0.7]]]])
    labels = torch.tensor([[[0, 255]]])
    terms = [bce(1.0, 1), bce(-2.0, 0), 0.05 * bce(0.3, 0), bce(0.0, 0), bce(1.5, 0), 0.05 * bce(-0.7, 1)]
    value = partcatseg_object_loss(logits, labels, 255)
    assert math.isclose(value.item(), sum(terms) / 6, rel_tol=1e-6)


def test_partcatseg_specific_loss_two_means_and_the_official_condition():
    # 2 object-specific parts + background, 1x3 image:
    # pixel 0: part 1 of object 0; pixel 1: object 0 without a part label (left out); pixel 2: no object
    logits = torch.tensor([[[[0.2, 5.0, -0.4]], [[1.0, 5.0, 0.6]], [[-1.5, 5.0, 2.0]]]])
    parts = torch.tensor([[[1, 255, 255]]])
    objects = torch.tensor([[[0, 0, 255]]])
    first = (bce(0.2, 0) + bce(1.0, 1) + 0.05 * bce(-1.5, 0)) / 3
    second = (bce(-0.4, 0) + bce(0.6, 0) + 0.05 * bce(2.0, 1)) / 3
    value = partcatseg_specific_loss(logits, parts, objects, 255)
    assert math.isclose(value.item(), first + second, rel_tol=1e-6)
    # no object pixel at all: the official code skips the background mean, the corrected one keeps it
    no_objects = torch.full((1, 1, 3), 255)
    no_parts = torch.full((1, 1, 3), 255)
    assert partcatseg_specific_loss(logits, no_parts, no_objects, 255).item() == 0.0
    only_bg = (bce(0.2, 0) + bce(1.0, 0) + 0.05 * bce(-1.5, 1)) / 3
    only_bg += (bce(5.0, 0) + bce(5.0, 0) + 0.05 * bce(5.0, 1)) / 3
    only_bg += (bce(-0.4, 0) + bce(0.6, 0) + 0.05 * bce(2.0, 1)) / 3
    corrected = partcatseg_specific_loss(logits, no_parts, no_objects, 255, faithful=False).item()
    assert math.isclose(corrected, only_bg / 3, rel_tol=1e-6)


def test_jensen_shannon_matches_hand_computation():
    p = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.5, 0.5]])
    kl_p = math.log(1 / 0.75)
    kl_q = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    expected = 0.5 * kl_p + 0.5 * kl_q
    assert math.isclose(jensen_shannon(p, q, dim=1).item(), expected, rel_tol=1e-5)
    assert jensen_shannon(q, q, dim=1).item() < 1e-8


def test_compositional_loss_sums_parts_into_their_objects():
    # two parts of object 0 + background; equal part costs give r = 1/3 each, so p = (2/3, 1/3)
    specific = torch.zeros(1, 2, 3, 1, 1)
    to_object = torch.tensor([0, 0])
    # object costs whose template mean is (log 2, 0): q = (2/3, 1/3) = p, so the divergence vanishes
    objects = torch.stack([torch.tensor([math.log(2) + 0.1, -0.1]), torch.tensor([math.log(2) - 0.1, 0.1])])
    objects = objects.reshape(1, 2, 2, 1, 1)
    assert compositional_loss(objects, specific, to_object).item() < 1e-6
    # uniform objects: p = (2/3, 1/3) against q = (1/2, 1/2)
    uniform = torch.zeros(1, 2, 2, 1, 1)
    m = (7 / 12, 5 / 12)
    kl_p = (2 / 3) * math.log((2 / 3) / m[0]) + (1 / 3) * math.log((1 / 3) / m[1])
    kl_q = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    value = compositional_loss(uniform, specific, to_object).item()
    assert math.isclose(value, 0.5 * kl_p + 0.5 * kl_q, rel_tol=1e-4)
