"""Comparisons that say how far apart two results are when they differ."""

from __future__ import annotations

import numpy as np
import torch

ATOL = 1e-4


def assert_close(ours: torch.Tensor, official: torch.Tensor, what: str, atol: float = ATOL) -> None:
    ours, official = torch.as_tensor(ours).float(), torch.as_tensor(official).float()
    assert ours.shape == official.shape, (
        f"{what}: shape {tuple(ours.shape)} != official {tuple(official.shape)}"
    )
    diff = (ours - official).abs()
    assert diff.max() <= atol, (
        f"{what}: max abs diff {diff.max():.3g} (mean {diff.mean():.3g}, "
        f"{(diff > atol).float().mean() * 100:.2f}% of values beyond {atol})"
    )


def assert_same_labels(
    ours: np.ndarray, official: np.ndarray, what: str, where: np.ndarray | None = None
) -> None:
    ours, official = np.asarray(ours), np.asarray(official)
    assert ours.shape == official.shape, f"{what}: shape {ours.shape} != official {official.shape}"
    where = np.ones(ours.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
    assert where.any(), f"{what}: no pixel to compare"
    differ = (ours != official) & where
    assert not differ.any(), (
        f"{what}: {differ.sum()} of {where.sum()} pixels ({differ.sum() / where.sum() * 100:.2f}%) differ"
    )
