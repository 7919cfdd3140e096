"""Named stages of a prediction (image encoder, cost volume, ..., label assignment) for the per-stage profile.

The models mark their stage boundaries with ``with stage("decoder"):``. Outside a :class:`StageProfile` this
is a shared no-op context, so the models pay nothing; inside one, every second (and, when counting, every
FLOP) between two boundaries is charged to the innermost open stage, so nested stages never count twice and
the stages add up to the whole call (work outside any stage is charged to ``"other"``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch

OTHER = "other"
_NULL = contextlib.nullcontext()
_ACTIVE: StageProfile | None = None


def stage(name: str) -> AbstractContextManager[Any]:
    """Charge the block's time (and FLOPs) to ``name`` while a :class:`StageProfile` is open; else no-op."""
    profile = _ACTIVE
    if profile is None:
        return _NULL
    return profile.section(name)


class StageProfile:
    """Exclusive time and FLOPs per stage of the code run inside ``with StageProfile(...)``.

    ``count_flops`` runs the block under ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions,
    attention) plus :class:`ovparts.benchmarking.flops.ElementwiseCounter` (the rest, approximately); both
    slow it down, so a profile counts FLOPs in one pass and times another. On CUDA each boundary synchronises, so a stage's
    time covers its kernels rather than their launch.
    """

    def __init__(self, device: torch.device | str = "cpu", count_flops: bool = False) -> None:
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}
        self.flops: dict[str, int] = {}
        self._stack: list[str] = []
        self._counters: list[Any] = []
        self._count = count_flops
        self._mark = (0.0, 0)
        self._previous: StageProfile | None = None

    def _now(self) -> tuple[float, int]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        flops = sum(int(counter.get_total_flops()) for counter in self._counters)
        return time.perf_counter(), flops

    def _charge(self) -> None:
        now = self._now()
        name = self._stack[-1] if self._stack else OTHER
        self.seconds[name] = self.seconds.get(name, 0.0) + now[0] - self._mark[0]
        self.flops[name] = self.flops.get(name, 0) + now[1] - self._mark[1]
        self._mark = now

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def __enter__(self) -> StageProfile:
        global _ACTIVE
        if self._count:
            from torch.utils.flop_counter import FlopCounterMode

            from ..benchmarking.flops import ElementwiseCounter

            self._counters = [FlopCounterMode(display=False), ElementwiseCounter()]
            for counter in self._counters:
                counter.__enter__()
        self._previous, _ACTIVE = _ACTIVE, self
        self._mark = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        global _ACTIVE
        self._charge()
        _ACTIVE = self._previous
        for counter in reversed(self._counters):
            counter.__exit__(*exc)
        self._counters = []

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())
