"""Issue 19's optimisations leave CAT-Seg / PartCATSeg outputs unchanged (fp32, within 1e-5).

The unoptimised computations are kept here as references: the class aggregation that appends the padding
classes to every pixel and projects concatenated [tokens ; guidance], the Swin block that concatenates
the appearance guidance to every class's tokens and rolls / partitions / merges / rolls back the map, the
spatial aggregation that runs each block in grid order, and the decoder upsampling that copies the guidance
to every class and concatenates it. Each test runs a layer or a whole tiny model both ways.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovparts.methods.partcatseg.model import CONFIGS as PARTCATSEG_CONFIGS
from ovparts.models import cost_aggregation as catseg_blocks
from ovparts.models.cost_aggregation import CLASS_ATTENTIONS, ClassAggregation
from ovparts.models.registry import load_model
from ovparts.vocabulary import Vocabulary


def reference_class_aggregation(layer, x, guidance, pool=(1, 1), class_chunk=None):
    """ClassAggregation as first written: padding rows appended per pixel, guidance gathered per pixel."""
    b, c, t, h, w = x.shape
    pooled = x
    if tuple(pool) != (1, 1):
        pooled = F.avg_pool2d(x.transpose(1, 2).reshape(b * t, c, h, w), tuple(pool))
        pooled = pooled.reshape(b, t, c, *pooled.shape[-2:]).transpose(1, 2)
    hp, wp = pooled.shape[-2:]
    tokens = pooled.permute(0, 3, 4, 2, 1).reshape(b * hp * wp, t, c)
    g = guidance
    extra = layer.pad_len - t if layer.pad_token is not None else 0
    if extra > 0 and g is not None and layer.pad_guidance is not None:
        g = torch.cat([g, layer.pad_guidance.expand(b, extra, -1)], dim=1)
    owner = torch.arange(tokens.shape[0]) // (hp * wp)
    attn = layer.attn
    rows = tokens
    if extra > 0:
        rows = torch.cat([rows, layer.pad_token.expand(rows.shape[0], extra, c)], dim=1)
    normed = layer.norm1(rows)
    xg = normed if g is None else torch.cat([normed, g[owner]], dim=-1)
    n, s = rows.shape[:2]
    q = attn.q(xg).reshape(n, s, attn.heads, -1)
    k = attn.k(xg).reshape(n, s, attn.heads, -1)
    v = attn.v(normed).reshape(n, s, attn.heads, -1)
    rows = rows + CLASS_ATTENTIONS[attn.kind](q, k, v).reshape(n, s, c)
    rows = rows[:, :t]
    rows = rows + layer.mlp(layer.norm2(rows))
    y = rows.reshape(b, hp, wp, t, c).permute(0, 3, 4, 1, 2)
    if (hp, wp) != (h, w):
        y = F.interpolate(y.reshape(b * t, c, hp, wp), size=(h, w), mode="bilinear", align_corners=True)
        y = y.reshape(b, t, c, h, w)
    return x + y.transpose(1, 2)


def reference_swin_block(block, x, guidance, h, w):
    """GuidedSwinBlock as first written: guidance concatenated to every row's tokens (one copy per class)."""
    n, length, c = x.shape
    if guidance is not None and guidance.shape[0] != n:
        guidance = guidance.repeat_interleave(n // guidance.shape[0], dim=0)
    window, shift = block._geometry(h, w)
    y = block.norm1(x)
    if guidance is not None:
        y = torch.cat([y, guidance], dim=-1)
    y = y.reshape(n, h, w, -1)
    if shift:
        y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
    windows = catseg_blocks.window_partition(y, window)
    per_item = (h // window) * (w // window)
    mask = catseg_blocks.shifted_window_mask(h, w, window, shift) if shift else None
    y = catseg_blocks.window_merge(block.attn(windows, per_item, mask), window, h, w)
    if shift:
        y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
    x = x + y.reshape(n, length, c)
    return x + block.mlp(block.norm2(x))


def reference_spatial_aggregation(layer, x, guidance, class_chunk=None):
    """SpatialAggregation as first written: (B, C, T, H, W) permuted to class rows, each block in grid order."""
    b, c, t, h, w = x.shape
    g = None
    if guidance is not None and layer.guidance_norm is not None:
        g = layer.guidance_norm(guidance.flatten(2).transpose(1, 2))
    y = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    y = reference_swin_block(layer.block2, reference_swin_block(layer.block1, y, g, h, w), g, h, w)
    return y.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)


def reference_guided_up(up, x, guidance=None):
    """GuidedUp as first written: the guidance repeated for every class and concatenated before conv1."""
    x = up.up(x)
    if guidance is not None:
        if guidance.shape[0] != x.shape[0]:
            guidance = guidance.repeat_interleave(x.shape[0] // guidance.shape[0], dim=0)
        x = torch.cat([x, guidance], dim=1)
    x = F.relu(up.norm1(up.conv1(x)))
    return F.relu(up.norm2(up.conv2(x)))


def _randomise(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)


@pytest.mark.parametrize("kind", ["linear", "query"])
@pytest.mark.parametrize("pad_len", [0, 9])
@pytest.mark.parametrize("guidance_dim", [0, 8])
def test_class_aggregation_matches_the_unoptimised_layer(kind, pad_len, guidance_dim):
    layer = ClassAggregation(16, guidance_dim, heads=2, pad_len=pad_len, attention=kind)
    _randomise(layer)
    x = torch.randn(2, 16, 6, 4, 4)
    g = torch.randn(2, 6, guidance_dim) if guidance_dim else None
    for pool in ((1, 1), (2, 2)):
        for chunk in (None, 2):
            expected = reference_class_aggregation(layer, x, g, pool)
            assert torch.allclose(layer(x, g, pool, class_chunk=chunk), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("guidance_dim", [0, 8])
@pytest.mark.parametrize("shift", [0, 2])
def test_swin_block_matches_the_unoptimised_block(guidance_dim, shift):
    block = catseg_blocks.GuidedSwinBlock(16, guidance_dim, heads=2, window=4, shift=shift)
    _randomise(block)
    x = torch.randn(6, 64, 16)  # 2 images x 3 classes, 8x8 grid
    g = torch.randn(2, 64, guidance_dim) if guidance_dim else None
    expected = reference_swin_block(block, x, g, 8, 8)
    assert torch.allclose(block(x, g, 8, 8), expected, atol=1e-5, rtol=1e-5)
    if g is not None:  # one guidance map per row still works
        per_row = g.repeat_interleave(3, dim=0)
        assert torch.allclose(block(x, per_row, 8, 8), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grid", [8, 4])  # 8: two windows a side (both blocks gather); 4: one window
@pytest.mark.parametrize("guidance_dim", [0, 8])
def test_spatial_aggregation_matches_grid_order(grid, guidance_dim):
    layer = catseg_blocks.SpatialAggregation(16, guidance_dim, heads=2, window=4)
    _randomise(layer)
    x = torch.randn(2, 16, 3, grid, grid)
    g = torch.randn(2, guidance_dim, grid, grid) if guidance_dim else None
    expected = reference_spatial_aggregation(layer, x, g)
    for chunk in (None, 2):
        assert torch.allclose(layer(x, g, chunk), expected, atol=1e-5, rtol=1e-5)


def test_window_order_is_roll_then_partition():
    block = catseg_blocks.GuidedSwinBlock(4, 0, heads=1, window=4, shift=2)
    x = torch.randn(3, 8, 8, 4)
    forward, inverse = block.order(8, 8, x.device)
    rolled = torch.roll(x, shifts=(-2, -2), dims=(1, 2))
    windows = catseg_blocks.window_partition(rolled, 4).reshape(3, 64, 4)
    assert torch.equal(x.reshape(3, 64, 4).index_select(1, forward), windows)
    assert torch.equal(windows.index_select(1, inverse), x.reshape(3, 64, 4))
    assert catseg_blocks.GuidedSwinBlock(4, 0, heads=1, window=8, shift=0).order(8, 8, x.device) is None


@pytest.mark.parametrize("guided", [True, False])
def test_guided_up_matches_the_concatenation(guided):
    up = catseg_blocks.GuidedUp(32, 16, 8 if guided else 0)
    _randomise(up)
    x = torch.randn(6, 32, 5, 5)  # 2 images x 3 classes
    g = torch.randn(2, 8, 10, 10) if guided else None
    expected = reference_guided_up(up, x, g)
    assert torch.allclose(up(x, g), expected, atol=1e-5, rtol=1e-5)
    cl = torch.channels_last
    got = up(x.contiguous(memory_format=cl), None if g is None else g.contiguous(memory_format=cl))
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    if g is not None:  # one map per row still works
        assert torch.allclose(up(x, g.repeat_interleave(3, dim=0)), expected, atol=1e-5, rtol=1e-5)


@pytest.fixture
def unoptimised(monkeypatch):
    """Swap the reference layers into the models (the 'before' side of a whole-model comparison)."""

    def swap():
        monkeypatch.setattr(
            catseg_blocks.ClassAggregation,
            "forward",
            lambda self, x, g, pool=(1, 1), class_chunk=None: reference_class_aggregation(self, x, g, pool),
        )
        monkeypatch.setattr(catseg_blocks.GuidedSwinBlock, "forward", reference_swin_block)
        monkeypatch.setattr(catseg_blocks.SpatialAggregation, "forward", reference_spatial_aggregation)
        monkeypatch.setattr(catseg_blocks.GuidedUp, "forward", reference_guided_up)

    return swap


def _pixels(model):
    torch.manual_seed(2)
    return torch.randn(1, 3, *model.preprocess.size)


@pytest.mark.parametrize("k", [3, 12])  # below and above the tiny model's pad_len (top-k branch)
def test_catseg_logits_unchanged(unoptimised, k):
    torch.manual_seed(0)
    model = load_model("catseg", config="tiny").eval()
    _randomise(model.head)
    vocab = Vocabulary.from_names([f"thing {i}'s part {i % 3}" for i in range(k)])
    pixels = _pixels(model)
    with torch.no_grad():
        after = model.predict(pixels, vocab).parts
        unoptimised()
        before = model.predict(pixels, vocab).parts
    assert torch.allclose(after, before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("faithful", [True, False])
def test_partcatseg_logits_unchanged(unoptimised, faithful):
    torch.manual_seed(0)
    model = load_model("partcatseg", config={**PARTCATSEG_CONFIGS["tiny"], "faithful": faithful}).eval()
    assert model.head.layers[0].classes.attn.kind == ("query" if faithful else "linear")
    _randomise(model.head)
    vocab = Vocabulary.parse("dog: head, tail, paw; cat: head, ear")
    pixels = _pixels(model)
    with torch.no_grad():
        after = model(pixels, vocab)
        unoptimised()
        before = model(pixels, vocab)
    for name in after:
        assert torch.allclose(after[name], before[name], atol=1e-5, rtol=1e-5), name
