"""Fused linear epilogues: the same numbers as the plain ops, and the plain ops wherever fusing is unsafe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ovparts.models.cost_aggregation import GuidedSwinBlock, Mlp
from ovparts.runtime import fused_linear as fl


def _linear(inputs=16, outputs=32):
    torch.manual_seed(0)
    return nn.Linear(inputs, outputs)


@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
def test_fused_equals_plain(activation):
    linear = _linear()
    x = torch.randn(3, 50, 16)
    with torch.inference_mode():
        fused = fl.fused_linear(linear, x, activation)
        with fl.disabled():
            plain = fl.fused_linear(linear, x, activation)
    expected = F.linear(x, linear.weight, linear.bias)
    expected = {"gelu": F.gelu, "relu": F.relu}.get(activation, lambda t: t)(expected)
    torch.testing.assert_close(plain, expected, rtol=0, atol=0)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_residual_is_added():
    linear, x, residual = _linear(), torch.randn(4, 7, 16), torch.randn(4, 7, 32)
    with torch.no_grad():
        fused = fl.fused_linear(linear, x, residual=residual)
    torch.testing.assert_close(fused, residual + linear(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        fl.fused_linear(linear, x, "gelu", residual)


def test_unsafe_places_use_the_plain_ops(monkeypatch):
    calls = []
    real = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, *args):
            calls.append("unary")
            return real(*args)

        def binary(self, *args):
            calls.append("binary")
            return real.binary(*args)

    monkeypatch.setattr(fl, "_fused_op", lambda: Spy())
    linear, x = _linear(), torch.randn(5, 16)
    with torch.inference_mode():
        fl.fused_linear(linear, x, "gelu")
    assert calls == ["unary"]  # CPU inference: fused
    calls.clear()
    out = fl.fused_linear(linear, x.requires_grad_(), "gelu")  # a gradient is recorded: plain, differentiable
    out.sum().backward()
    assert x.grad is not None
    frozen, residual = _linear().requires_grad_(False), torch.randn(5, 32, requires_grad=True)
    fl.fused_linear(frozen, x.detach(), residual=residual).sum().backward()  # only the residual learns
    assert torch.equal(residual.grad, torch.ones(5, 32))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fl.fused_linear(linear, x.detach(), "gelu")  # a FLOP count sees a plain matmul
    assert counter.get_total_flops() == 2 * 5 * 16 * 32
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert fl.fused_linear(linear, x.detach()).dtype == torch.bfloat16  # autocast applies as usual
    with torch.inference_mode():
        fl.fused_linear(_linear().double(), x.detach().double(), "relu")  # float64: plain
        fl.fused_linear(linear, torch.randn(16, 5).t(), "relu")  # strided: oneDNN's slow reference kernel
        fl.fused_linear(linear, x.detach(), residual=torch.randn(32, 5).t())
        with fl.disabled():
            fl.fused_linear(linear, x.detach(), "relu")
    assert calls == []  # none of these was fused


def test_a_build_without_the_op_falls_back_for_good(monkeypatch):
    def broken():
        raise RuntimeError("no such op")

    monkeypatch.setitem(fl._state, "available", True)
    monkeypatch.setattr(fl, "_fused_op", broken)
    linear, x = _linear(), torch.randn(5, 16)
    with torch.inference_mode():
        torch.testing.assert_close(fl.fused_linear(linear, x, "relu"), F.relu(linear(x)))
    assert fl._state["available"] is False


def test_swin_block_and_mlp_equal_with_and_without_fusing():
    torch.manual_seed(0)
    block = GuidedSwinBlock(16, 8, heads=2, window=4, shift=2).eval()
    mlp = Mlp(16, 64, activation=nn.ReLU).eval()
    x, g = torch.randn(6, 64, 16), torch.randn(2, 64, 8)
    with torch.inference_mode():
        fused = block(x, g, 8, 8), mlp(x, residual=x)
        with fl.disabled():
            plain = block(x, g, 8, 8), mlp(x, residual=x)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
