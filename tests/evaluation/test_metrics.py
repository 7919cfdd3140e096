"""Confusion matrix and averaging rules on small cases computed by hand (see the comments for the arithmetic)."""

import numpy as np
import pytest
import torch

from ovparts.errors import ConfigError
from ovparts.evaluation import ConfusionMatrix, apply_rule

# 4x4 case. -1 in GT = ignore, -1 in prediction = "no part".
GT = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, -1, -1],
        [2, 2, -1, -1],
    ]
)
PRED = np.array(
    [
        [0, 3, 1, 1],
        [0, 0, 1, -1],
        [2, 0, 1, 2],
        [-1, 2, 0, 3],
    ]
)
N = 4
SEEN = [0, 1]  # unseen: 2, 3
NAMES = ["a's x", "a's y", "b's x", "b's z"]


def hand_matrix():
    """Rows = prediction, columns = GT, index 4 = ignore / no part. Pixel by pixel:
    class 0: 3 hits, 1 predicted as 3; class 1: 3 hits, 1 "no part"; class 2: 2 hits, 1 predicted 0,
    1 "no part"; 4 ignore pixels forced to [4, 4] whatever was predicted there."""
    m = np.zeros((5, 5), dtype=np.int64)
    m[0, 0] = 3
    m[3, 0] = 1
    m[1, 1] = 3
    m[4, 1] = 1
    m[2, 2] = 2
    m[0, 2] = 1
    m[4, 2] = 1
    m[4, 4] = 4
    return m


@pytest.fixture
def conf():
    c = ConfusionMatrix(N)
    c.update(PRED, GT)
    return c.matrix


def test_accumulation_matches_hand_matrix(conf):
    assert np.array_equal(conf, hand_matrix())


def test_accumulation_streams_and_accepts_torch(conf):
    c = ConfusionMatrix(N)
    c.update(torch.from_numpy(PRED[:2]), torch.from_numpy(GT[:2]))
    c.update(PRED[2:], GT[2:])
    assert np.array_equal(c.matrix, conf)
    batched = ConfusionMatrix(N)
    batched.update(np.stack([PRED, PRED]), np.stack([GT, GT]))
    assert np.array_equal(batched.matrix, 2 * conf)


def test_bad_ids_and_shapes_raise():
    c = ConfusionMatrix(N)
    with pytest.raises(ValueError, match="outside"):
        c.update(PRED, np.full_like(GT, 7))
    with pytest.raises(ValueError, match="predicted ids"):
        c.update(np.full_like(PRED, 4), GT)
    with pytest.raises(ValueError, match="shape"):
        c.update(PRED[:2], GT)


def test_ovparts_rule_by_hand(conf):
    r = apply_rule("ovparts", conf, SEEN, NAMES)
    # IoU = tp / (gt incl. "no part" + pred - tp): 3/(4+4-3), 3/(4+3-3), 2/(4+2-2), 0/(0+1-0)
    assert np.allclose(r.iou, [60, 75, 50, 0])
    assert r.metrics["mIoU"] == pytest.approx((60 + 75 + 50 + 0) / 4)
    assert r.metrics["mIoU-seen"] == pytest.approx(67.5)
    assert r.metrics["mIoU-unseen"] == pytest.approx(25.0)
    assert r.metrics["h-IoU"] == pytest.approx(2 * 67.5 * 25 / 92.5)
    # recall = tp / gt: 3/4, 3/4, 2/4; class 3 has no GT
    assert np.allclose(r.recall[:3], [75, 75, 50]) and np.isnan(r.recall[3])
    assert r.metrics["mRecall-unseen"] == pytest.approx(50.0)
    assert r.metrics["pAcc"] == pytest.approx(100 * 8 / 12)
    assert r.metrics["no-part-rate"] == pytest.approx(100 * 2 / 12)


def test_ov_parts_rule_by_hand(conf):
    r = apply_rule("ov_parts", conf, SEEN, NAMES)
    # N x N block only ("no part" row dropped): IoU 3/5, 3/3, 2/3; class 3 predicted, no GT -> NaN but counted
    assert np.allclose(r.iou[:3], [60, 100, 200 / 3]) and np.isnan(r.iou[3])
    assert r.official["mIoU"] == pytest.approx(100 * (0.6 + 1 + 2 / 3) / 4)
    assert r.official["mIoU-base"] == pytest.approx(80.0)
    assert r.official["mIoU-unbase"] == pytest.approx(100 * (2 / 3) / 2)
    assert r.official["h-IoU"] == pytest.approx(2 * 80 * (100 / 3) / (80 + 100 / 3))
    assert "mRecall" not in r.metrics


def test_partclipseg_oracle_by_hand(conf):
    r = apply_rule("partclipseg", conf, SEEN, NAMES, protocol="oracle_obj")
    # nanmean over GT classes only: class 3 (predicted, absent) is ignored entirely
    assert r.official["mIoU"] == pytest.approx(100 * (0.6 + 1 + 2 / 3) / 3)
    assert r.official["mIoU-base"] == pytest.approx(80.0)
    assert r.official["mIoU-unbase"] == pytest.approx(200 / 3)
    assert r.official["mRecall"] == pytest.approx(100 * (0.75 + 1 + 2 / 3) / 3)
    assert r.official["pACC"] == pytest.approx(80.0)  # 8 hits / 10 GT pixels in the N x N block
    assert r.official["pAcc-base"] == pytest.approx(100 * 6 / 7)


def test_partclipseg_pred_all_by_hand(conf):
    r = apply_rule("partclipseg", conf, SEEN, NAMES, protocol="pred_all")
    # full matrix, ignore column zeroed: background row has 2 predictions on part pixels, no hit -> IoU 0
    # IoU = [3/5, 3/4, 2/4, 0, 0] and mIoU averages all five entries
    assert r.official["mIoU"] == pytest.approx(100 * (0.6 + 0.75 + 0.5) / 5)
    assert r.metrics["background-IoU"] == pytest.approx(0.0)
    assert r.official["mIoU-base"] == pytest.approx(67.5)
    assert r.official["mIoU-unbase"] == pytest.approx(50.0)  # only classes with GT: class 2
    assert r.official["h-IoU"] == pytest.approx(2 * 67.5 * 50 / 117.5)


def test_partcatseg_oracle_drops_zero_iou_classes(conf):
    r = apply_rule("partcatseg", conf, SEEN, NAMES, protocol="oracle_obj")
    # overall mean over classes with GT or prediction: (0.6 + 1 + 2/3 + 0) / 4, equal to ov_parts
    assert r.official["mIoU"] == pytest.approx(100 * (0.6 + 1 + 2 / 3) / 4)
    assert r.official["mIoU-base"] == pytest.approx(80.0)
    assert r.official["mIoU-unbase"] == pytest.approx(200 / 3)  # class 3 has IoU 0 -> dropped
    assert r.official["pACC-base"] == pytest.approx(87.5)  # a mean of per-class accuracies
    assert r.official["h-IoU"] == pytest.approx(2 * 80 * (200 / 3) / (80 + 200 / 3))


def test_partcatseg_pred_all_counts_ignore_as_background_hits(conf):
    r = apply_rule("partcatseg", conf, SEEN, NAMES, protocol="pred_all")
    # background entry: tp = 4 ignore pixels, gt = 4, pred = 1 + 1 + 4 -> 4 / 6
    assert r.metrics["background-IoU"] == pytest.approx(100 * 4 / 6)
    assert r.official["mIoU"] == pytest.approx(100 * (0.6 + 0.75 + 0.5 + 0 + 4 / 6) / 5)
    assert r.official["pACC"] == pytest.approx(100 * 12 / 16)
    assert r.official["mIoU-unbase"] == pytest.approx(50.0)


def test_partcatseg_omits_split_keys_without_positive_iou():
    m = np.zeros((3, 3), dtype=np.int64)
    m[0, 0] = 5  # class 0 (seen) perfect, class 1 (unseen) never present
    r = apply_rule("partcatseg", m, [0], ["o's a", "o's b"])
    assert "mIoU-unbase" not in r.official and "h-IoU" not in r.official
    assert np.isnan(apply_rule("ovparts", m, [0], ["o's a", "o's b"]).metrics["h-IoU"])


def test_unknown_rule_is_a_clear_error(conf):
    with pytest.raises(ConfigError, match="choose from"):
        apply_rule("best", conf, SEEN, NAMES)


def test_per_class_iou_equals_torchmetrics_on_random_data():
    torchmetrics = pytest.importorskip("torchmetrics")
    rng = np.random.default_rng(0)
    n = 9
    conf = ConfusionMatrix(n)
    metric = torchmetrics.classification.MulticlassJaccardIndex(
        num_classes=n, average="none", ignore_index=255
    )
    for _ in range(3):
        gt = rng.integers(0, n, size=(2, 24, 24))
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, n, size=gt.shape))
        ignore = rng.random(gt.shape) < 0.1
        conf.update(pred, np.where(ignore, -1, gt))
        metric.update(torch.from_numpy(pred), torch.from_numpy(np.where(ignore, 255, gt)))
    expected = metric.compute().numpy()
    ours = apply_rule("ovparts", conf.matrix, [0, 1, 2], [f"o's {i}" for i in range(n)]).iou / 100
    assert np.allclose(ours, expected, atol=1e-6)
    assert np.allclose(conf.per_class_iou(), expected, atol=1e-6)


def test_ovparts_equals_ov_parts_when_every_pixel_gets_a_part():
    """Documented claim: on Oracle-Obj predictions without "no part" pixels the two rules agree exactly."""
    rng = np.random.default_rng(5)
    n = 12
    conf = ConfusionMatrix(n)
    gt = rng.integers(0, n - 3, size=(40, 40))  # classes 9..11 never in GT: predicted-but-absent cases
    gt[rng.random(gt.shape) < 0.2] = -1
    conf.update(np.where(rng.random(gt.shape) < 0.5, np.maximum(gt, 0), rng.integers(0, n, gt.shape)), gt)
    names = [f"o's {i}" for i in range(n)]
    ours = apply_rule("ovparts", conf.matrix, range(6), names).metrics
    theirs = apply_rule("ov_parts", conf.matrix, range(6), names).metrics
    for key in ("mIoU", "mIoU-seen", "mIoU-unseen", "h-IoU"):
        assert ours[key] == pytest.approx(theirs[key])
