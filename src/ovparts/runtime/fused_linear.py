"""Linear layers with their activation or residual add fused into the matrix product (CPU inference).

The cost-aggregation heads run their MLPs and projections on tens of thousands of tokens per image (every
class at every pixel), and ``F.linear`` followed by GELU and a residual add makes three passes over outputs
of tens of megabytes. oneDNN applies the activation, or adds the residual, while each output tile is still
in cache: the same function with one pass instead of three (measured on a 2-core Xeon at CAT-Seg's K = 116
scale, 66 816 tokens: fc1 + exact GELU 220 -> 133 ms, fc2 + residual 111 -> 84 ms; results equal to the
plain ops within 1e-5, GELU bit for bit).

The op is PyTorch's own (``torch.ops.mkldnn._linear_pointwise``, what inductor emits for these patterns on
CPU) but private and without a backward, so it runs only where nothing can go wrong: CPU, float32, no
autocast, no gradient recorded, contiguous operands (oneDNN's reference kernel for strided ones is tens of
times slower), not traced, compiled or exported, and not under a dispatch mode (the FLOP counters know no
oneDNN op). Everywhere else the plain ops compute the same function. If the op is missing
or refuses its inputs (another PyTorch build), the plain ops take over for the rest of the process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

ACTIVATIONS = {"gelu": (F.gelu, ("gelu", [], "none")), "relu": (F.relu, ("relu", [], ""))}
"""Activation name -> (the plain function, oneDNN's post-op arguments). GELU is the exact (erf) one."""

_state = {"available": hasattr(torch.ops.mkldnn, "_linear_pointwise"), "enabled": True}


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Plain ops only inside the block (tests compare both paths)."""
    before = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = before


def _fusable(*operands: Tensor | None) -> bool:
    """Whether the fused op may compute ``F.linear`` (+ epilogue) of these operands (x, weight, bias, residual)."""
    if not (_state["available"] and _state["enabled"]):
        return False
    given = [t for t in operands if t is not None]
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in given):
        return False
    if not all(t.is_contiguous() for t in given):
        return False  # oneDNN then falls back to a reference kernel tens of times slower (measured: 50x)
    if torch.is_autocast_enabled("cpu") or (torch.is_grad_enabled() and any(t.requires_grad for t in given)):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or _compiling():
        return False
    return _get_current_dispatch_mode() is None


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling()) if is_compiling is not None else False


def _fused_op():  # noqa: ANN202 - a torch op overload packet
    return torch.ops.mkldnn._linear_pointwise


def fused_linear(
    linear: nn.Linear, x: Tensor, activation: str | None = None, residual: Tensor | None = None
) -> Tensor:
    """``activation(linear(x))`` or ``residual + linear(x)``, fused where :func:`_fusable` allows.

    With neither there is no epilogue to fuse, and ``F.linear`` runs (oneDNN's plain product measured no
    faster).
    """
    if activation is not None and residual is not None:
        raise ValueError("fused_linear applies an activation or adds a residual, not both.")
    weight, bias = linear.weight, linear.bias
    plain_activation, post_op = ACTIVATIONS[activation] if activation is not None else (None, None)
    fits = residual is None or residual.shape == (*x.shape[:-1], weight.shape[0])
    if (activation is not None or residual is not None) and fits and _fusable(x, weight, bias, residual):
        try:
            op = _fused_op()
            if residual is not None:
                return op.binary(x, residual, weight, bias, "add")
            return op(x, weight, bias, *post_op)
        except (RuntimeError, TypeError, NotImplementedError, AttributeError):
            _state["available"] = False  # this build cannot: plain ops from now on
    y = F.linear(x, weight, bias)
    if plain_activation is not None:
        return plain_activation(y)
    return y if residual is None else residual + y
