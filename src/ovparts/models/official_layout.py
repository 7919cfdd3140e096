"""The cost-aggregation head laid out as the official CAT-Seg / PartCATSeg code computes it.

ovparts' head (``cost_aggregation.py``) computes the same function with less work: padding classes once per
layer, guidance projected once per image, Swin blocks kept in window order, decoder guidance never copied
per class. The forwards here are the unoptimised layout those changes replaced:

- class aggregation: the learned padding classes appended to every pixel's class sequence (queries,
  outputs and MLP included), the text guidance gathered to every pixel and concatenated before the query
  and key projections;
- Swin blocks: the appearance guidance concatenated to every class's tokens, the map rolled, partitioned
  into windows, merged and rolled back in each block, the volume permuted into class rows in grid order;
- decoder: the guidance repeated for every class and concatenated before the first convolution.

Two users: the benchmark's ``official`` peer of CAT-Seg and PartCATSeg (what a 3x goal "against the
official structure" is measured against, in the same run), and the tests that prove the optimised head
computes the same outputs. :func:`use_official_layout` switches a model's head modules to these forwards.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cost_aggregation import (
    CLASS_ATTENTIONS,
    ClassAggregation,
    GuidedSwinBlock,
    GuidedUp,
    SpatialAggregation,
    pool_classes,
    shifted_window_mask,
    unpool_classes,
    window_merge,
    window_partition,
)


def class_aggregation(
    layer: ClassAggregation,
    x: Tensor,
    guidance: Tensor | None,
    pool: tuple[int, int] = (1, 1),
    class_chunk: int | None = None,
) -> Tensor:
    """``ClassAggregation`` with the padding rows and the guidance at every pixel (no class chunks)."""
    b, c, t, h, w = x.shape
    pooled = pool_classes(x, pool)
    hp, wp = pooled.shape[-2:]
    rows = pooled.permute(0, 3, 4, 2, 1).reshape(b * hp * wp, t, c)
    extra = layer.pad_len - t if layer.pad_token is not None else 0
    if extra > 0 and guidance is not None and layer.pad_guidance is not None:
        guidance = torch.cat([guidance, layer.pad_guidance.expand(b, extra, -1)], dim=1)
    if extra > 0:
        rows = torch.cat([rows, layer.pad_token.expand(rows.shape[0], extra, c)], dim=1)
    normed = layer.norm1(rows)
    image_of_row = torch.arange(rows.shape[0], device=x.device) // (hp * wp)
    keyed = normed if guidance is None else torch.cat([normed, guidance[image_of_row]], dim=-1)
    attn = layer.attn
    n, length = rows.shape[:2]
    q = attn.q(keyed).reshape(n, length, attn.heads, -1)
    k = attn.k(keyed).reshape(n, length, attn.heads, -1)
    v = attn.v(normed).reshape(n, length, attn.heads, -1)
    rows = rows + CLASS_ATTENTIONS[attn.kind](q, k, v).reshape(n, length, c)
    rows = rows[:, :t]
    rows = rows + plain_mlp(layer.mlp, layer.norm2(rows))
    y = rows.reshape(b, hp, wp, t, c).permute(0, 3, 4, 1, 2)
    return x + unpool_classes(y, (h, w)).transpose(1, 2)


def swin_block(block: GuidedSwinBlock, x: Tensor, guidance: Tensor | None, h: int, w: int) -> Tensor:
    """``GuidedSwinBlock`` with the guidance copied to every row and the map rolled / partitioned / merged."""
    n, length, c = x.shape
    if guidance is not None and guidance.shape[0] != n:
        guidance = guidance.repeat_interleave(n // guidance.shape[0], dim=0)
    window, shift = block.geometry(h, w)
    y = block.norm1(x)
    if guidance is not None:
        y = torch.cat([y, guidance], dim=-1)
    y = y.reshape(n, h, w, -1)
    if shift:
        y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
    windows = window_partition(y, window)
    per_item = (h // window) * (w // window)
    mask = shifted_window_mask(h, w, window, shift, x.device) if shift else None
    y = window_merge(block.attn(windows, per_item, mask), window, h, w)  # no residual: a plain projection
    if shift:
        y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
    x = x + y.reshape(n, length, c)
    return x + plain_mlp(block.mlp, block.norm2(x))


def plain_mlp(mlp: nn.Module, x: Tensor) -> Tensor:
    """The MLP as separate linear, activation and linear ops (no fused epilogues)."""
    return mlp.fc2(mlp.act(mlp.fc1(x)))


def spatial_aggregation(
    layer: SpatialAggregation, x: Tensor, guidance: Tensor | None, class_chunk: int | None = None
) -> Tensor:
    """``SpatialAggregation`` on class rows in grid order, each block laid out as :func:`swin_block`."""
    b, c, t, h, w = x.shape
    g = None
    if guidance is not None and layer.guidance_norm is not None:
        g = layer.guidance_norm(guidance.flatten(2).transpose(1, 2))
    y = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    y = swin_block(layer.block2, swin_block(layer.block1, y, g, h, w), g, h, w)
    return y.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)


def guided_up(up: GuidedUp, x: Tensor, guidance: Tensor | None = None) -> Tensor:
    """``GuidedUp`` with the guidance repeated for every class and concatenated before the first conv."""
    x = up.up(x)
    if guidance is not None:
        if guidance.shape[0] != x.shape[0]:
            guidance = guidance.repeat_interleave(x.shape[0] // guidance.shape[0], dim=0)
        x = torch.cat([x, guidance], dim=1)
    x = F.relu(up.norm1(up.conv1(x)))
    return F.relu(up.norm2(up.conv2(x)))


OFFICIAL_FORWARDS = {
    ClassAggregation: class_aggregation,
    GuidedSwinBlock: swin_block,
    SpatialAggregation: spatial_aggregation,
    GuidedUp: guided_up,
}
"""Head module type -> its forward in the official layout."""


def use_official_layout(model: nn.Module) -> int:
    """Switch every head module of ``model`` to its official-layout forward; returns how many switched.

    Only this model instance changes (the forwards are bound per module), so a process may hold an
    optimised model beside an official-layout one. Weights and outputs stay the same.
    """
    switched = 0
    for module in model.modules():
        forward = OFFICIAL_FORWARDS.get(type(module))
        if forward is not None:
            module.forward = types.MethodType(forward, module)
            switched += 1
    return switched
