"""Issue 19's optimisations leave CAT-Seg / PartCATSeg outputs unchanged (fp32, within 1e-5).

The unoptimised computations are ``ovparts.models.official_layout`` (the head as the official code lays it
out, also the benchmark's ``official`` peer): each test runs a layer or a whole tiny model both ways.
"""

from __future__ import annotations

import pytest
import torch

from ovparts.methods.partcatseg.model import CONFIGS as PARTCATSEG_CONFIGS
from ovparts.models import cost_aggregation as catseg_blocks
from ovparts.models.cost_aggregation import ClassAggregation
from ovparts.models.official_layout import (
    class_aggregation,
    guided_up,
    spatial_aggregation,
    swin_block,
    use_official_layout,
)
from ovparts.models.registry import load_model
from ovparts.vocabulary import Vocabulary


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
            expected = class_aggregation(layer, x, g, pool)
            assert torch.allclose(layer(x, g, pool, class_chunk=chunk), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("guidance_dim", [0, 8])
@pytest.mark.parametrize("shift", [0, 2])
def test_swin_block_matches_the_unoptimised_block(guidance_dim, shift):
    block = catseg_blocks.GuidedSwinBlock(16, guidance_dim, heads=2, window=4, shift=shift)
    _randomise(block)
    x = torch.randn(6, 64, 16)  # 2 images x 3 classes, 8x8 grid
    g = torch.randn(2, 64, guidance_dim) if guidance_dim else None
    expected = swin_block(block, x, g, 8, 8)
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
    expected = spatial_aggregation(layer, x, g)
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
    expected = guided_up(up, x, g)
    assert torch.allclose(up(x, g), expected, atol=1e-5, rtol=1e-5)
    cl = torch.channels_last
    got = up(x.contiguous(memory_format=cl), None if g is None else g.contiguous(memory_format=cl))
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    if g is not None:  # one map per row still works
        assert torch.allclose(up(x, g.repeat_interleave(3, dim=0)), expected, atol=1e-5, rtol=1e-5)


def _pixels(model):
    torch.manual_seed(2)
    return torch.randn(1, 3, *model.preprocess.size)


@pytest.mark.parametrize("k", [3, 12])  # below and above the tiny model's pad_len (top-k branch)
def test_catseg_logits_unchanged(k):
    torch.manual_seed(0)
    model = load_model("catseg", config="tiny").eval()
    _randomise(model.head)
    vocab = Vocabulary.from_names([f"thing {i}'s part {i % 3}" for i in range(k)])
    pixels = _pixels(model)
    with torch.no_grad():
        after = model.predict(pixels, vocab).parts
        assert use_official_layout(model) == 4 * len(model.head.layers) + 2  # 4 per layer, 2 decoder steps
        before = model.predict(pixels, vocab).parts
    assert torch.allclose(after, before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("faithful", [True, False])
def test_partcatseg_logits_unchanged(faithful):
    torch.manual_seed(0)
    model = load_model("partcatseg", config={**PARTCATSEG_CONFIGS["tiny"], "faithful": faithful}).eval()
    assert model.head.layers[0].classes.attn.kind == ("query" if faithful else "linear")
    _randomise(model.head)
    vocab = Vocabulary.parse("dog: head, tail, paw; cat: head, ear")
    pixels = _pixels(model)
    with torch.no_grad():
        after = model(pixels, vocab)
        assert use_official_layout(model) > 0
        before = model(pixels, vocab)
    for name in after:
        assert torch.allclose(after[name], before[name], atol=1e-5, rtol=1e-5), name
