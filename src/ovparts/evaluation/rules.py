"""Named averaging rules: how each official evaluator turns the confusion matrix into reported numbers.

The three official code bases score the *same* predictions differently (docs/evaluation.md names each rule and the official evaluator it follows).
Each compatibility rule below reproduces one of them exactly, quirks included, so numbers can be compared
with published tables; ``ovparts`` is our own rule, the one we recommend for new results:

``ovparts`` (default)
    IoU over part classes from the matrix without its ignore column. A ground-truth part pixel predicted as
    "no part" counts as a miss in every protocol; a class predicted but absent from the ground truth counts 0.
    mIoU, seen, unseen = mean over classes with GT or prediction; recall over classes with GT. Same rule for
    every split, no background entry, no dropped classes.
``ov_parts``
    OV-PARTS ``GeneralizedSemSegEvaluator`` (Oracle-Obj only in the paper's code): N x N block; sum of IoU over
    GT classes / number of classes with GT or prediction. No recall.
``partclipseg``
    PartCLIPSeg ``PartCLIPSegEvaluator``: Oracle = nanmean over GT classes; Pred-All = nanmean over N+1 entries
    (background included) with GT-ignore column zeroed, splits over GT classes; whole-map boundary IoU.
``partcatseg``
    PartCATSeg ``PartCATSegEvaluator``: mIoU over classes with GT or prediction; seen/unseen means keep only
    classes with IoU > 0 (inflated); Pred-All matrix keeps ignore pixels as background hits.

All rules are pure functions of the accumulated (N+1)x(N+1) matrix (rows = prediction, columns = GT) and
return values x100, like the official code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .choices import BOUNDARY_MODES


@dataclass
class RuleResult:
    """Numbers of one averaging rule.

    ``metrics`` uses uniform names (``mIoU``, ``mIoU-seen``, ``mIoU-unseen``, ``h-IoU``, ``mRecall``...),
    holding only what the rule defines. ``official`` repeats the numbers under the exact keys the official
    evaluator returns (``mIoU-base``, ``mIoU-unbase``, ``IoU-<class>``...), empty for ``ovparts``.
    ``iou`` and ``recall`` are per part class (N,), NaN where the rule leaves a class undefined.
    """

    rule: str
    protocol: str
    iou: np.ndarray
    recall: np.ndarray | None
    metrics: dict[str, float] = field(default_factory=dict)
    official: dict[str, float] = field(default_factory=dict)
    boundary_iou: np.ndarray | None = None


def _quiet(func):
    """The official formulas divide 0/0 and take means of empty arrays on purpose (NaN results)."""

    def wrapper(*args, **kwargs):
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return func(*args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _harmonic(a: float, b: float) -> float:
    """2ab/(a+b) with NaN passing through, as the official code computes it (0/0 gives NaN)."""
    a, b = np.float64(a), np.float64(b)
    return float(2 * a * b / (a + b))


def _mask(length: int, ids: Sequence[int]) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    mask[np.asarray(list(ids), dtype=int)] = True
    return mask


# Our metric names -> the key names the detectron2-based official evaluators print.
_DETECTRON2_KEYS = {
    "mIoU": "mIoU",
    "mIoU-seen": "mIoU-base",
    "mIoU-unseen": "mIoU-unbase",
    "h-IoU": "h-IoU",
    "mRecall": "mRecall",
    "mRecall-seen": "mRecall-base",
    "mRecall-unseen": "mRecall-unbase",
    "h-Recall": "h-Recall",
    "pAcc": "pACC",
    "fwIoU": "fwIoU",
}


def _uniform(metrics: dict[str, float], official: dict[str, float], pairs: dict[str, str]) -> None:
    for ours, theirs in pairs.items():
        if theirs in official:
            metrics[ours] = float(official[theirs])


# ---------------------------------------------------------------------------------------------- ov_parts
@_quiet
def ov_parts(
    conf: np.ndarray, seen_ids: Sequence[int], names: Sequence[str], protocol: str = "oracle_obj", **_
) -> RuleResult:
    """OV-PARTS ``GeneralizedSemSegEvaluator.evaluate`` (commit 939b1a56)."""
    n = conf.shape[0] - 1
    block = conf[:n, :n].astype(np.float64)
    tp = np.diag(block)
    pos_gt = block.sum(0)
    pos_pred = block.sum(1)
    weights = pos_gt / pos_gt.sum()
    acc_valid = pos_gt > 0
    iou_valid = (pos_gt + pos_pred) > 0
    union = pos_gt + pos_pred - tp
    iou = np.full(n, np.nan)
    iou[acc_valid] = tp[acc_valid] / union[acc_valid]
    official: dict[str, float] = {
        "mIoU": 100 * np.sum(iou[acc_valid]) / np.sum(iou_valid),
        "fwIoU": 100 * np.sum(iou[acc_valid] * weights[acc_valid]),
    }
    for i, name in enumerate(names):
        official[f"IoU-{name}"] = 100 * iou[i]
    mask = _mask(n, seen_ids)
    for prefix, subset in (("", mask), ("un", ~mask)):
        official[f"mIoU-{prefix}base"] = (
            100 * np.sum(iou[subset][acc_valid[subset]]) / np.sum(iou_valid[subset])
        )
    official["h-IoU"] = _harmonic(official["mIoU-base"], official["mIoU-unbase"])
    official = {k: float(v) for k, v in official.items()}
    metrics: dict[str, float] = {}
    _uniform(
        metrics,
        official,
        {
            "mIoU": "mIoU",
            "mIoU-seen": "mIoU-base",
            "mIoU-unseen": "mIoU-unbase",
            "h-IoU": "h-IoU",
            "fwIoU": "fwIoU",
        },
    )
    return RuleResult("ov_parts", protocol, 100 * iou, None, metrics, official)


# ---------------------------------------------------------------------------------------------- partclipseg
@_quiet
def partclipseg(
    conf: np.ndarray,
    seen_ids: Sequence[int],
    names: Sequence[str],
    protocol: str = "oracle_obj",
    boundary_conf: np.ndarray | None = None,
    **_,
) -> RuleResult:
    """PartCLIPSeg ``PartCLIPSegEvaluator.evaluate`` (commit 8abceeff); Pred-Obj uses its Pred-All branch."""
    oracle = protocol == "oracle_obj"
    n = conf.shape[0] - 1
    matrix = conf.astype(np.float64).copy()
    if oracle:
        tp = np.diag(matrix)[:-1]
        pos_gt = matrix[:-1, :-1].sum(0)
        pos_pred = matrix[:-1, :-1].sum(1)
    else:
        matrix[:, -1] = 0  # "Without GT background"
        tp = np.diag(matrix)
        pos_gt = matrix.sum(0)
        pos_pred = matrix.sum(1)
    length = tp.size
    recall_valid = pos_gt > 0
    weights = pos_gt / np.sum(pos_gt)
    acc = np.full(length, np.nan)
    acc[recall_valid] = tp[recall_valid] / pos_gt[recall_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = (pos_gt + pos_pred) > 0
    iou = np.full(length, np.nan)
    chosen = recall_valid if oracle else iou_valid
    iou[chosen] = tp[chosen] / union[chosen]
    recall = acc.copy()
    official: dict[str, float] = {
        "mIoU": 100 * np.nanmean(iou),
        "fwIoU": 100 * np.nansum(iou * weights),
    }
    for i, name in enumerate(names):
        official[f"IoU-{name}"] = 100 * iou[i]
    official["mACC"] = 100 * np.nanmean(acc)
    official["pACC"] = 100 * np.nansum(tp) / np.nansum(pos_gt)
    official["mRecall"] = 100 * np.nanmean(recall)

    b_iou = None
    if boundary_conf is not None:
        b = boundary_conf.astype(np.float64)
        if oracle:
            b_tp, b_gt, b_pred = np.diag(b)[:-1], b[:-1, :-1].sum(0), b[:-1, :-1].sum(1)
        else:
            b_tp, b_gt, b_pred = np.diag(b), b.sum(0), b.sum(1)
        b_union = b_gt + b_pred - b_tp
        b_iou = np.full(length, np.nan)
        b_iou[b_union > 0] = b_tp[b_union > 0] / b_union[b_union > 0]
    for i, name in enumerate(names):
        official[f"ACC-{name}"] = 100 * acc[i]
        official[f"Recall-{name}"] = 100 * recall[i]
        if b_iou is not None:
            official[f"BoundaryIoU-{name}"] = 100 * b_iou[i]

    mask = _mask(length, seen_ids)
    for prefix, subset in (("", mask), ("un", ~mask)):
        subset_iou_valid = (recall_valid if oracle else iou_valid) & subset
        subset_acc_valid = recall_valid & subset
        if np.any(subset_iou_valid):
            if oracle:
                miou = np.nanmean(iou[subset])
            else:
                miou = np.sum(iou[subset][recall_valid[subset]]) / np.sum(recall_valid[subset])
        else:
            miou = np.nan
        mrecall = np.nanmean(recall[subset_acc_valid]) if np.any(subset_acc_valid) else np.nan
        pacc = np.nansum(tp[subset]) / np.nansum(pos_gt[subset]) if np.nansum(pos_gt[subset]) > 0 else np.nan
        official[f"mIoU-{prefix}base"] = 100 * miou
        official[f"pAcc-{prefix}base"] = 100 * pacc
        official[f"mRecall-{prefix}base"] = 100 * mrecall
        if b_iou is not None:
            official[f"Boundary-mIoU-{prefix}base"] = 100 * (
                np.nanmean(b_iou[subset]) if np.any(subset) else np.nan
            )
    official["h-IoU"] = _harmonic(official["mIoU-base"], official["mIoU-unbase"])
    if b_iou is not None:
        official["h-bIoU"] = _harmonic(official["Boundary-mIoU-base"], official["Boundary-mIoU-unbase"])
    official["h-Recall"] = _harmonic(official["mRecall-base"], official["mRecall-unbase"])
    official = {k: float(v) for k, v in official.items()}
    metrics: dict[str, float] = {}
    _uniform(
        metrics,
        official,
        {
            **_DETECTRON2_KEYS,
            "bIoU-seen": "Boundary-mIoU-base",
            "bIoU-unseen": "Boundary-mIoU-unbase",
            "h-bIoU": "h-bIoU",
        },
    )
    if not oracle:
        metrics["background-IoU"] = float(100 * iou[n])
    return RuleResult(
        "partclipseg",
        protocol,
        100 * iou[:n],
        100 * recall[:n],
        metrics,
        official,
        None if b_iou is None else 100 * b_iou[:n],
    )


# ---------------------------------------------------------------------------------------------- partcatseg
@_quiet
def _catseg_metrics(
    conf: np.ndarray, names: Sequence[str], include_last: bool
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """``PartCATSegEvaluator.calculate_metrics``."""
    matrix = conf.astype(np.float64)
    if include_last:
        tp, pos_gt, pos_pred = np.diag(matrix), matrix.sum(0), matrix.sum(1)
    else:
        tp, pos_gt, pos_pred = np.diag(matrix)[:-1], matrix[:-1, :-1].sum(0), matrix[:-1, :-1].sum(1)
    length = tp.size
    weights = pos_gt / np.sum(pos_gt)
    recall_valid = pos_gt > 0
    acc = np.full(length, np.nan)
    acc[recall_valid] = tp[recall_valid] / pos_gt[recall_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = (pos_gt + pos_pred) > 0
    iou = np.full(length, np.nan)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    recall = acc.copy()
    res = {
        "mIoU": 100 * np.nanmean(iou),
        "fwIoU": 100 * np.nansum(iou * weights),
        "mACC": 100 * np.nanmean(acc),
        "pACC": 100 * np.nansum(tp) / np.nansum(pos_gt),
        "mRecall": 100 * np.nanmean(recall),
    }
    for i, name in enumerate(names):
        res[f"IoU-{name}"] = 100 * iou[i]
        res[f"ACC-{name}"] = 100 * acc[i]
        res[f"Recall-{name}"] = 100 * recall[i]
    return res, iou, recall


@_quiet
def partcatseg(
    conf: np.ndarray, seen_ids: Sequence[int], names: Sequence[str], protocol: str = "oracle_obj", **_
) -> RuleResult:
    """PartCATSeg ``PartCATSegEvaluator.evaluate`` (commit 4a9a8828): ``oracle_obj`` or ``pred_all`` dict."""
    oracle = protocol == "oracle_obj"
    n = conf.shape[0] - 1
    official, iou, recall = _catseg_metrics(conf, names, include_last=not oracle)
    class_iou = np.array([official[f"IoU-{name}"] for name in names])
    mask = _mask(n, seen_ids)
    for prefix, subset in (("", mask), ("un", ~mask)):
        valid = subset & (class_iou > 0)
        if np.any(valid):
            picked = np.flatnonzero(valid)
            official[f"mIoU-{prefix}base"] = np.nanmean([official[f"IoU-{names[i]}"] for i in picked])
            official[f"mRecall-{prefix}base"] = np.nanmean([official[f"Recall-{names[i]}"] for i in picked])
            official[f"pACC-{prefix}base"] = np.nansum(
                [official[f"ACC-{names[i]}"] for i in picked]
            ) / np.sum(valid)
    for key in ("IoU", "Recall"):
        a, b = official.get(f"m{key}-base"), official.get(f"m{key}-unbase")
        if a is not None and b is not None:
            official[f"h-{key}"] = 2 * (a * b) / (a + b) if (a + b) != 0 else np.nan
    official = {k: float(v) for k, v in official.items()}
    metrics: dict[str, float] = {}
    _uniform(
        metrics,
        official,
        _DETECTRON2_KEYS,
    )
    if not oracle:
        metrics["background-IoU"] = float(100 * iou[n])
    return RuleResult("partcatseg", protocol, 100 * iou[:n], 100 * recall[:n], metrics, official)


# ---------------------------------------------------------------------------------------------- ovparts
def _nanmean(values: np.ndarray) -> float:
    return float(np.mean(values[~np.isnan(values)])) if np.any(~np.isnan(values)) else float("nan")


def harmonic(a: float, b: float) -> float:
    """Our harmonic mean: NaN if either side is undefined, 0 when both are 0."""
    if np.isnan(a) or np.isnan(b):
        return float("nan")
    return 0.0 if a + b == 0 else float(2 * a * b / (a + b))


@_quiet
def ovparts(
    conf: np.ndarray, seen_ids: Sequence[int], names: Sequence[str], protocol: str = "oracle_obj", **_
) -> RuleResult:
    """Our rule: one definition for every protocol and every subset (see the module docstring)."""
    n = conf.shape[0] - 1
    matrix = conf[:, :n].astype(np.float64)  # drop the ignore column, keep the "no part" row
    tp = np.diag(matrix[:n])
    pos_gt = matrix.sum(0)
    pos_pred = matrix[:n].sum(1)
    union = pos_gt + pos_pred - tp
    iou = np.where(union > 0, tp / union, np.nan)
    recall = np.where(pos_gt > 0, tp / pos_gt, np.nan)
    seen = _mask(n, seen_ids)
    metrics = {
        "mIoU": 100 * _nanmean(iou),
        "mIoU-seen": 100 * _nanmean(iou[seen]),
        "mIoU-unseen": 100 * _nanmean(iou[~seen]),
        "mRecall": 100 * _nanmean(recall),
        "mRecall-seen": 100 * _nanmean(recall[seen]),
        "mRecall-unseen": 100 * _nanmean(recall[~seen]),
        "pAcc": 100 * float(tp.sum() / pos_gt.sum()) if pos_gt.sum() > 0 else float("nan"),
        "fwIoU": 100 * float(np.nansum(iou * pos_gt) / pos_gt.sum()) if pos_gt.sum() > 0 else float("nan"),
        "no-part-rate": 100 * float(matrix[n].sum() / pos_gt.sum()) if pos_gt.sum() > 0 else float("nan"),
    }
    metrics["h-IoU"] = harmonic(metrics["mIoU-seen"], metrics["mIoU-unseen"])
    metrics["h-Recall"] = harmonic(metrics["mRecall-seen"], metrics["mRecall-unseen"])
    return RuleResult("ovparts", protocol, 100 * iou, 100 * recall, metrics, {})


RULES: dict[str, Callable[..., RuleResult]] = {
    "ovparts": ovparts,
    "ov_parts": ov_parts,
    "partclipseg": partclipseg,
    "partcatseg": partcatseg,
}


def check_rule(rule: str) -> str:
    """``rule`` if it names an averaging rule, else one sentence listing them."""
    if rule not in RULES:
        raise ConfigError(f"Unknown averaging rule {rule!r}; choose from {', '.join(RULES)}.")
    return rule


def boundary_modes(mode: str | None, average: str, num_classes: int) -> tuple[bool, bool]:
    """(per_class, d2_compat) for a boundary setting and a rule; the d2 variant needs fewer than 255 classes."""
    mode = "none" if mode in (None, False) else mode
    if mode not in BOUNDARY_MODES:
        raise ConfigError(f"Unknown boundary mode {mode!r}; choose from {', '.join(BOUNDARY_MODES)}.")
    if mode == "auto":
        per_class, d2 = average == "ovparts", average == "partclipseg"
    else:
        per_class, d2 = mode in ("per_class", "both"), mode in ("d2_compat", "both")
    if d2 and num_classes >= 255:
        if mode in ("d2_compat", "both"):
            raise ConfigError(
                "The d2-compatible boundary IoU needs fewer than 255 classes (PartCLIPSeg skips it too)."
            )
        d2 = False
    return per_class, d2


def apply_rule(
    rule: str,
    conf: np.ndarray,
    seen_ids: Sequence[int],
    names: Sequence[str],
    protocol: str = "oracle_obj",
    boundary_conf: np.ndarray | None = None,
) -> RuleResult:
    """Run a named rule on an accumulated (N+1)x(N+1) matrix."""
    return RULES[check_rule(rule)](conf, seen_ids, names, protocol=protocol, boundary_conf=boundary_conf)
