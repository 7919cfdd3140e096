"""``class_chunk="auto"``: how many classes to run together, sized from the memory free right now.

Per-class heads (CLIPSeg's decoder, CAT-Seg's aggregator) hold activations for every class they process at
once. A fixed chunk is either too small for a big GPU (many small kernels) or too big for a laptop running
ADE20K-Part-234. "auto" divides a fraction of the free memory by the model's estimate of one class's
activations, so the same config is lean on a laptop and wide on a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import ConfigError

# Share of the free memory the per-class activations may take: the rest is for the image encoder's
# activations, the allocator's slack, and whatever else the process does meanwhile.
AUTO_FRACTION = 0.25


def available_memory(device: torch.device | str) -> int:
    """Bytes that can still be allocated on ``device`` (CUDA: free device memory; CPU: MemAvailable)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30  # unknown platform: assume a modest machine


def check_class_chunk(chunk: object) -> None:
    """Raise :class:`ConfigError` unless ``chunk`` is a configurable class chunk: an integer (<= 0: all
    classes at once), ``None`` (all) or ``"auto"``."""
    if chunk is None or chunk == "auto" or (isinstance(chunk, int) and not isinstance(chunk, bool)):
        return
    raise ConfigError(f"class_chunk must be a whole number or 'auto', not {chunk!r}.")


def resolve_class_chunk(
    chunk: int | str | None, classes: int, per_class_bytes: int, device: torch.device | str
) -> int:
    """A concrete chunk (>= 1, <= ``classes``) for a configured one; ``None`` or <= 0 means all classes."""
    if chunk == "auto":
        budget = AUTO_FRACTION * available_memory(device)
        return int(min(max(1, budget // max(per_class_bytes, 1)), max(classes, 1)))
    if isinstance(chunk, str):
        raise ValueError(f"class_chunk must be a number or 'auto', not {chunk!r}.")
    if chunk is None or chunk <= 0:
        return max(classes, 1)
    return int(chunk)


# Why the chunk loops below are not traced by torch.compile (see ovparts.runtime.compiling).
CHUNK_LOOP_REASON = "class-chunk loop: each chunk is a compiled graph of its own"


@torch.compiler.disable(recursive=False, reason=CHUNK_LOOP_REASON)
def map_slices(
    fn: Callable[..., torch.Tensor],
    tensors: Sequence[torch.Tensor],
    step: int | None,
    dim: int = 0,
    out_dim: int | None = None,
) -> torch.Tensor:
    """``fn`` on matching ``step``-long slices along ``dim`` of every tensor, results joined along ``out_dim``.

    ``step`` None or <= 0, or no shorter than the axis, calls ``fn`` once on the whole tensors. Under
    ``torch.compile`` this loop runs eagerly and each ``fn`` call is compiled on its own, dynamic in the slice
    length: a traced loop would fix the number of slices, so each vocabulary size would need a new graph.
    """
    total = tensors[0].shape[dim]
    if not step or step <= 0 or step >= total:
        return fn(*tensors)
    outputs = []
    for start in range(0, total, step):  # a loop, not a comprehension: no frame of its own to trace
        length = min(step, total - start)
        outputs.append(fn(*(t.narrow(dim, start, length) for t in tensors)))
    return torch.cat(outputs, dim if out_dim is None else out_dim)
