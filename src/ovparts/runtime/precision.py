"""Mixed precision for inference: one name ("fp32", "bf16", "fp16") -> an autocast context.

Autocast rather than casting the weights: matmuls and convolutions run in the low precision while
reductions, norms and softmaxes stay in fp32, which is what keeps the probabilities within 1e-2 of fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import ConfigError

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


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is missing)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_support(flags: set[str] | None = None) -> str | None:
    """Which bf16 matmul hardware this CPU has: "amx_bf16", "avx512_bf16", or None (bf16 then emulated).

    Without either, oneDNN converts bf16 to fp32 around each matmul, which is slower than fp32."""
    flags = cpu_flags() if flags is None else flags
    for name in ("amx_bf16", "avx512_bf16"):
        if name in flags:
            return name
    return None


def preferred_precision(device: torch.device | str, flags: set[str] | None = None) -> str:
    """The fastest precision worth using on ``device``: on CUDA bf16 where the GPU supports it (Ampere and
    later) else fp16; on CPU bf16 with AMX or AVX512-BF16, fp32 otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_support(flags) else "fp32"


def describe_precision_support(device: torch.device | str, precision: str) -> str:
    """One line for benchmark output: the precision run and what hardware the device has for it."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bf16 = "supported" if torch.cuda.is_bf16_supported() else "not supported"
        return f"precision {precision} on {name} (bf16 {bf16})"
    support = cpu_bf16_support()
    hardware = f"bf16 hardware: {support}" if support else "no bf16 hardware (no amx_bf16 / avx512_bf16)"
    return f"precision {precision} on CPU, {hardware}"
