"""Mixed precision for inference: one name ("fp32", "bf16", "fp16") -> an autocast context.

Autocast rather than casting the weights: matmuls and convolutions run in the low precision while
reductions, norms and softmaxes stay in fp32, which is what keeps the probabilities within 1e-2 of fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import ConfigError

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str) -> str:
    """The precision name if usable on ``device``; one clear sentence otherwise."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ConfigError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 autocast needs a CUDA device; use bf16 on CPU.")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str = "fp32") -> Iterator[None]:
    """Run the block under autocast in ``precision`` on ``device`` (fp32: no autocast at all)."""
    device = torch.device(device)
    dtype = PRECISIONS[check_precision(precision, device)]
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
