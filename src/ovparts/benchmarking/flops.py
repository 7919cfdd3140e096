"""Counting the work FlopCounterMode does not: pointwise ops, reductions, norms, pooling and resampling.

``torch.utils.flop_counter.FlopCounterMode`` counts matmuls, convolutions and attention only, so stages such
as upsampling or label assignment would show 0 FLOPs. :class:`ElementwiseCounter` adds an approximate count
for the rest: one operation per output element of a pointwise op, one per input element of a reduction,
norm or pooling, and seven per output element of a bilinear resize (four products, three sums). Views and
copies count nothing: they move memory, they do not compute.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten

_PER_INPUT = {
    aten.sum,
    aten.mean,
    aten.amax,
    aten.amin,
    aten.max,
    aten.min,
    aten._softmax,
    aten.native_layer_norm,
    aten.native_group_norm,
    aten.avg_pool2d,
    aten.topk,
    aten.sort,
    aten.linalg_vector_norm,
    aten.norm,
}
# pointwise-tagged, but they move or fill memory rather than compute
_MEMORY = {
    aten.clone,
    aten.copy_,
    aten.copy,
    aten._to_copy,
    aten.fill_,
    aten.fill,
    aten.where,
    aten.masked_fill,
}
_BILINEAR = {aten.upsample_bilinear2d, aten._upsample_bilinear2d_aa}


def _numel(values: Any) -> int:
    flat, _ = tree_flatten(values)
    return sum(v.numel() for v in flat if isinstance(v, torch.Tensor))


class ElementwiseCounter(TorchDispatchMode):
    """Approximate non-matmul operations of the code run inside it (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def get_total_flops(self) -> int:
        return self.total

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        if packet in _BILINEAR:
            self.total += 7 * _numel(out)
        elif packet in _PER_INPUT:
            self.total += _numel(args[0])
        elif torch.Tag.pointwise in func.tags and not func.is_view and packet not in _MEMORY:
            self.total += _numel(out)
        return out
