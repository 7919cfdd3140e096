"""Measuring primitives: wall-clock medians, peak memory, FLOP counts and the machine's matmul rate.

Everything here is a ratio's ingredient: figures on a shared, loaded machine are noisy, so the benchmark
always reports a model's numbers next to a peer's (or the matmul rate) measured in the same process run.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a CUDA timing covers the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Median wall-clock time of ``fn`` over ``repeats`` runs after ``warmup`` untimed runs.

    The median, not the mean: a neighbour's burst of CPU use on a shared machine inflates single runs.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def max_rss_bytes() -> int:
    """The process's resident-set high-water mark since it started (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory added by the code in the ``with`` block, above the level at entry.

    On CUDA it is exact (``max_memory_allocated``). On CPU a thread samples the resident set every 2 ms:
    ``ru_maxrss`` cannot be reset within a process, so a per-block peak needs sampling.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        self.start = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes() - self.start)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.start
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes() - self.start)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (matmuls, convolutions, attention), as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_rate(
    device: torch.device, size: int = 2048, dtype: torch.dtype = torch.float32, repeats: int = 5
) -> float:
    """The machine's achieved matrix-multiply rate in FLOP/s (median of ``repeats``), measured now.

    This is the yardstick for the image encoder's FLOP rate: a ViT is mostly matmuls, so a well-run encoder
    should get a good fraction of what a plain large matmul gets on the same threads, in the same run.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, repeats, device)
    return 2 * size**3 / seconds


def load_average() -> float | None:
    """The 1-minute load average, reported next to every figure so readers can judge its noise."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
