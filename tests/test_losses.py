import math

import torch

from ovparts.methods.catseg.losses import catseg_bce_loss
from ovparts.methods.clipseg.losses import clipseg_baseline_loss
from ovparts.methods.partcatseg.losses import (
    compositional_loss,
    jensen_shannon,
    partcatseg_object_loss,
    partcatseg_part_loss,
    partcatseg_specific_loss,
)
from ovparts.models.losses import one_hot_targets, resize_logits, weighted_bce


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


# ---------------------------------------------------------------------------------------------- PartCLIPSeg
import pytest  # noqa: E402

from ovparts.methods.partclipseg.losses import (  # noqa: E402
    attention_control_losses,
    gaussian_kernel,
    part_attention_map,
    partclipseg_segmentation_losses,
    partclipseg_total_loss,
    smooth,
)


def mean_bce(pairs, weights=None):
    weights = weights or [1.0] * len(pairs)
    return sum(w * bce(x, y) for (x, y), w in zip(pairs, weights, strict=True)) / len(pairs)


def test_partclipseg_segmentation_losses_by_hand():
    # T=2 parts of one object (generalized parts 0 and 1), P=2, O=1; two pixels:
    # pixel 0 = part 1 of object 0, pixel 1 = no part, no object.
    z = torch.tensor([[0.5, 1.0], [-1.0, 2.0], [0.3, -0.7]])  # (T+1, W) for H=1
    y = torch.tensor([[0.2, 0.1], [1.5, -0.4], [0.8, 0.6], [-0.2, 1.1]])  # (P+O+1, W)
    parts = torch.tensor([[[1, 255]]])
    objects = torch.tensor([[[0, 255]]])
    terms = partclipseg_segmentation_losses(
        z[None, :, None], y[None, :, None], parts, objects, torch.tensor([0, 1]), num_generalized=2
    )
    w = [1, 1, 0.05]
    expected_partobj = mean_bce([(0.5, 0), (-1.0, 1), (0.3, 0)], w) + mean_bce(
        [(1.0, 0), (2.0, 0), (-0.7, 1)], w
    )
    expected_part = mean_bce([(0.2, 0), (1.5, 1)])
    expected_obj = mean_bce([(0.8, 1), (-0.2, 0), (0.6, 0), (1.1, 1)], [1, 0.05, 1, 0.05])
    assert math.isclose(terms["part_object"].item(), expected_partobj, rel_tol=1e-6)
    assert math.isclose(terms["part"].item(), expected_part, rel_tol=1e-6)
    assert math.isclose(terms["object"].item(), expected_obj, rel_tol=1e-6)


def test_partclipseg_background_guard_faithful_vs_fixed():
    z = torch.randn(1, 3, 1, 2)
    y = torch.randn(1, 4, 1, 2)
    gen = torch.tensor([0, 1])
    # every pixel inside an object: the official guard averages an empty background set -> NaN -> total 0
    parts, objects = torch.tensor([[[0, 1]]]), torch.tensor([[[0, 0]]])
    fixed = partclipseg_segmentation_losses(z, y, parts, objects, gen, 2)
    official = partclipseg_segmentation_losses(z, y, parts, objects, gen, 2, faithful=True)
    assert torch.isfinite(fixed["part_object"]) and torch.isnan(official["part_object"])
    assert partclipseg_total_loss(official, faithful=True).item() == 0.0
    assert torch.isfinite(partclipseg_total_loss(fixed))
    # no object anywhere: the official code skips the background term, the fixed one keeps it
    none = torch.tensor([[[255, 255]]])
    fixed = partclipseg_segmentation_losses(z, y, none, none, gen, 2)
    official = partclipseg_segmentation_losses(z, y, none, none, gen, 2, faithful=True)
    w = [1, 1, 0.05]
    expected = mean_bce([(z[0, c, 0, x].item(), c == 2) for x in (0, 1) for c in range(3)], w * 2)
    assert math.isclose(fixed["part_object"].item(), expected, rel_tol=1e-5)
    assert official["part_object"].item() == 0.0


def test_gaussian_kernel_attend_and_excite_form():
    kernel = gaussian_kernel(3, 0.5)
    line = [math.exp(-1), 1.0, math.exp(-1)]
    total = sum(line)
    for i in range(3):
        for j in range(3):
            assert math.isclose(kernel[i, j].item(), line[i] * line[j] / total**2, rel_tol=1e-6)
    assert math.isclose(kernel[1, 1].item(), 0.33191, abs_tol=1e-5)
    assert math.isclose(kernel[0, 0].item(), 0.04492, abs_tol=1e-5)


def test_smooth_keeps_constants_and_spreads_a_delta():
    kernel = gaussian_kernel()
    flat = torch.full((4, 5), 0.7)
    torch.testing.assert_close(smooth(flat, kernel), flat)
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1.0
    expected = torch.zeros(5, 5)
    expected[1:4, 1:4] = kernel
    torch.testing.assert_close(smooth(delta, kernel), expected)
    edge = torch.zeros(3, 3)
    edge[0, 1] = 1.0  # reflect padding mirrors row 1 into row -1, not row 0: the edge cell is not doubled
    assert math.isclose(smooth(edge, kernel)[0, 1].item(), kernel[1, 1].item(), rel_tol=1e-6)


def test_part_attention_map_averages_masked_rows_over_all_queries():
    attention = torch.arange(16.0).view(4, 4)
    mask = torch.tensor([[1, 0], [0, 1]])
    expected = (attention[0] + attention[3]) / 4
    torch.testing.assert_close(part_attention_map(attention, mask), expected.view(2, 2))


def attention_case(keys: dict[int, dict[tuple[int, int], float]], batch: int = 1) -> torch.Tensor:
    """(B, N, 10, 10) attention on a 3x3 grid: every query row of class t equals the key map keys[t]."""
    torch.manual_seed(0)
    attention = torch.rand(batch, len(keys), 10, 10)  # the CLS row/column must be ignored
    for t, spots in keys.items():
        row = torch.zeros(9)
        for (i, j), value in spots.items():
            row[3 * i + j] = value
        attention[:, t, 1:, 1:] = row
    return attention


# part 0 attends to the middle-left cell; part 1 to the middle-left and middle-right cells equally
KEYS = {0: {(1, 0): 1.0}, 1: {(1, 0): 0.5, (1, 2): 0.5}}
CENTRE = 0.331906  # centre weight of the 3x3 kernel
PEAK_0 = CENTRE * 1.0 * 3 / 9  # 3 of 9 query rows are part 0's pixels
PEAK_1 = CENTRE * 0.5 * 2 / 9  # part 1 covers 2 cells


def run_attention_losses(part_map, object_map, part_to_object, batch=1, **kw):
    attention = attention_case(KEYS, batch)
    index = torch.arange(2)
    parts = torch.tensor(part_map).expand(batch, 3, 3)
    objects = torch.tensor(object_map).expand(batch, 3, 3)
    return attention_control_losses(
        attention, index, index, torch.tensor(part_to_object), parts, objects, (3, 3), **kw
    )


def test_attention_losses_one_object_by_hand():
    # one object everywhere but row 0 column 2 (background); part 0 = left column, part 1 = right column
    part_map = [[0, 255, 255], [0, 255, 1], [0, 255, 1]]
    object_map = [[0, 0, 255], [0, 0, 0], [0, 0, 0]]
    for faithful in (True, False):
        sep, enh = run_attention_losses(part_map, object_map, [0, 0], faithful=faithful)
        # both parts claim (1,0); part 1 also claims (1,2): overlap 1 cell of 2 covered ones
        if faithful:
            assert math.isclose(sep.item(), 0.5, abs_tol=1e-6)
        assert math.isclose(enh.item(), 1 - min(PEAK_0, PEAK_1), rel_tol=1e-4)
    soft_sep, _ = run_attention_losses(part_map, object_map, [0, 0], faithful=False, temperature=1e-4)
    assert math.isclose(soft_sep.item(), 0.5, abs_tol=1e-3)  # the relaxation tends to the official step


def test_attention_losses_scope_and_normalisation_faithful_vs_fixed():
    # object 0 = left column with part 0, object 1 = the rest with part 1 (right column); no background
    part_map = [[0, 255, 255], [0, 255, 1], [0, 255, 1]]
    object_map = [[0, 1, 1], [0, 1, 1], [0, 1, 1]]
    sep, enh = run_attention_losses(part_map, object_map, [0, 1], faithful=False, temperature=1e-4)
    assert math.isclose(sep.item(), 0.0, abs_tol=1e-3)  # each object only counts its own part
    assert math.isclose(enh.item(), ((1 - PEAK_0) + (1 - PEAK_1)) / 2, rel_tol=1e-4)
    # official: no unlabelled pixel, so unique()[:-1] drops object 1; object 0 counts both parts
    sep, enh = run_attention_losses(part_map, object_map, [0, 1], faithful=True)
    assert math.isclose(sep.item(), 1.0, abs_tol=1e-6)
    assert math.isclose(enh.item(), 1 - PEAK_1, rel_tol=1e-4)
    # official sums are divided by objects x batch size: a duplicated batch halves them
    sep2, enh2 = run_attention_losses(part_map, object_map, [0, 1], batch=2, faithful=True)
    assert math.isclose(sep2.item(), 0.5, abs_tol=1e-6)
    assert math.isclose(enh2.item(), (1 - PEAK_1) / 2, rel_tol=1e-4)
    sep2, enh2 = run_attention_losses(part_map, object_map, [0, 1], batch=2, faithful=False)
    assert math.isclose(enh2.item(), ((1 - PEAK_0) + (1 - PEAK_1)) / 2, rel_tol=1e-4)


@pytest.mark.parametrize("faithful", [True, False])
def test_separation_gradient_only_when_relaxed(faithful):
    attention = attention_case(KEYS).requires_grad_(True)
    part_map = torch.tensor([[[0, 255, 255], [0, 255, 1], [0, 255, 1]]])
    object_map = torch.tensor([[[0, 0, 255], [0, 0, 0], [0, 0, 0]]])
    index = torch.arange(2)
    sep, enh = attention_control_losses(
        attention, index, index, torch.tensor([0, 0]), part_map, object_map, (3, 3), faithful=faithful
    )
    has_grad = sep.requires_grad
    if has_grad:
        (grad,) = torch.autograd.grad(sep, attention, retain_graph=True)
        has_grad = grad.abs().sum().item() > 0
    assert has_grad is (not faithful)  # the official hard threshold gives L_sep no gradient
    (grad,) = torch.autograd.grad(enh, attention)
    assert grad.abs().sum().item() > 0  # L_enh always back-propagates


def test_partclipseg_total_loss_weights():
    terms = {k: torch.tensor(v) for k, v in dict(part_object=1.0, object=2.0, part=3.0).items()}
    assert math.isclose(partclipseg_total_loss(terms).item(), 6.0)
    terms.update(separation=torch.tensor(10.0), enhancement=torch.tensor(100.0))
    assert math.isclose(partclipseg_total_loss(terms).item(), 6.0 + 1.0 + 1.0)
    assert math.isclose(partclipseg_total_loss(terms, object_weight=0.5, part_weight=0).item(), 1 + 1 + 2)


# ---------------------------------------------------------------------------------------------------------
# PartCATSeg (official baselines/partcatseg.py)


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
