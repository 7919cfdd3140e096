"""Label maps per second of ``ovparts.evaluation.ConfusionMatrix`` against simpler implementations.

Measured in the same run, on the same random 512x512 maps (about 60% correct, 10% ignore, 5% "no part"),
for 116 (Pascal-Part-116) and 234 (ADE20K-Part-234) classes:

- ``per-class loop``: the straightforward per-image NumPy way, one boolean mask per class for tp, GT and
  prediction counts. The ratio printed is ours / this.
- ``official-style``: the official evaluators' per-image ``np.bincount`` on the whole map (ignore pixels
  included, int64 conversions) for reference, since that is what researchers run today.

Every implementation's per-class IoU is checked against ours before timing. Runs in well under a minute:
``python benchmarks/evaluator_throughput.py [--maps 40] [--size 512]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ovparts.benchmarking.measure import median_seconds
from ovparts.evaluation import ConfusionMatrix

CPU = torch.device("cpu")


def make_maps(count: int, size: int, classes: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(count):
        gt = rng.integers(0, classes, size=(size // 16, size // 16)).repeat(16, 0).repeat(16, 1)
        gt[rng.random(gt.shape) < 0.1] = -1
        noise = rng.integers(-1, classes, size=gt.shape)
        pred = np.where(rng.random(gt.shape) < 0.6, gt, noise)
        pred[(gt >= 0) & (rng.random(gt.shape) < 0.05)] = -1
        maps.append((pred.astype(np.int64), gt.astype(np.int64)))
    return maps


def per_class_loop(maps, classes: int) -> np.ndarray:
    """tp, GT and prediction pixel counts per class, one boolean comparison per class and image."""
    tp = np.zeros(classes)
    gt_count = np.zeros(classes)
    pred_count = np.zeros(classes)
    for pred, gt in maps:
        valid = gt >= 0
        for c in range(classes):
            g = gt == c
            p = (pred == c) & valid
            tp[c] += np.count_nonzero(g & p)
            gt_count[c] += np.count_nonzero(g)
            pred_count[c] += np.count_nonzero(p)
    union = gt_count + pred_count - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def official_style(maps, classes: int) -> np.ndarray:
    """The official evaluators' accumulation: ignore -> N, prediction forced to N there, full-map bincount."""
    n = classes
    conf = np.zeros((n + 1, n + 1), dtype=np.int64)
    for pred, gt in maps:
        pred = np.array(pred, dtype=int)
        gt = np.array(gt, dtype=int)
        pred[pred < 0] = n
        pred[gt < 0] = n
        gt[gt < 0] = n
        conf += np.bincount((n + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=conf.size).reshape(
            conf.shape
        )
    block = conf[:n, :n]
    tp = np.diag(block).astype(float)
    union = block.sum(0) + block.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def ours(maps, classes: int) -> np.ndarray:
    conf = ConfusionMatrix(classes)
    for pred, gt in maps:
        conf.update(pred, gt)
    return conf.matrix


def miss_aware_iou(matrix: np.ndarray) -> np.ndarray:
    """IoU where "no part" predictions on GT pixels count as misses (what the per-class loop computes)."""
    n = matrix.shape[0] - 1
    tp = np.diag(matrix)[:n].astype(float)
    union = matrix[:, :n].sum(0) + matrix[:n, :n].sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def block_iou(matrix: np.ndarray) -> np.ndarray:
    n = matrix.shape[0] - 1
    block = matrix[:n, :n]
    tp = np.diag(block).astype(float)
    union = block.sum(0) + block.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def timed(func, maps, classes: int, repeat: int) -> tuple[float, np.ndarray]:
    """Label maps per second (median of ``repeat`` runs, the package's timer) and the last run's result."""
    results = []
    seconds = median_seconds(lambda: results.append(func(maps, classes)), repeat, CPU, warmup=0)
    return len(maps) / seconds, results[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.maps} maps of {args.size}x{args.size}, median of {args.repeat}; label maps per second")
    print(
        f"{'classes':>8} {'ovparts':>10} {'per-class loop':>15} {'official-style':>15} {'ratio vs loop':>14} {'vs official':>12}"
    )
    for classes in (116, 234):
        maps = make_maps(args.maps, args.size, classes)
        fast, matrix = timed(ours, maps, classes, args.repeat)
        few = maps[: max(4, args.maps // 8)]  # the loop is slow; time it on fewer maps
        loop, loop_iou = timed(per_class_loop, few, classes, 1)
        official, official_iou = timed(official_style, maps, classes, args.repeat)
        assert np.allclose(loop_iou, miss_aware_iou(ours(few, classes)), equal_nan=True), (
            "per-class loop disagrees"
        )
        assert np.allclose(official_iou, block_iou(matrix), equal_nan=True), "official-style disagrees"
        print(
            f"{classes:>8} {fast:>10.1f} {loop:>15.1f} {official:>15.1f} {fast / loop:>13.1f}x {fast / official:>11.2f}x"
        )


if __name__ == "__main__":
    main()
