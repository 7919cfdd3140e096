"""CAT-Seg building blocks: shapes, masks, and the equivariances the method relies on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovparts.errors import ConfigError
from ovparts.models.cost_aggregation import (
    SWIN_MASK_VALUE,
    ClassAggregation,
    CostEmbedding,
    GuidedSwinBlock,
    GuidedUp,
    SpatialAggregation,
    cosine_cost,
    linear_attention,
    map_classes,
    shifted_window_mask,
    window_merge,
    window_partition,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_class_chunks_cover_every_class_once():
    classes = torch.arange(7).reshape(1, 1, 7)

    def chunks(chunk: int | None) -> list[list[int]]:
        seen = []
        out = map_classes(lambda x: seen.append(x[0, 0].tolist()) or x, classes, chunk)
        assert torch.equal(out, classes)
        return seen

    assert chunks(3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunks(0) == [list(range(7))]
    assert chunks(None) == [list(range(7))]


def test_cosine_cost_is_cosine_similarity():
    image, text = torch.randn(2, 8, 3, 4), torch.randn(2, 5, 2, 8)
    cost = cosine_cost(image, text)
    assert cost.shape == (2, 2, 5, 3, 4)
    b, p, t, y, x = 1, 1, 3, 2, 0
    expected = F.cosine_similarity(image[b, :, y, x], text[b, t, p], dim=0)
    assert torch.allclose(cost[b, p, t, y, x], expected, atol=1e-6)
    assert cost.abs().max() <= 1 + 1e-6


def test_cost_embedding_acts_per_class():
    embed = CostEmbedding(prompts=3, hidden_dim=16)
    cost = torch.randn(2, 3, 4, 6, 6)
    out = embed(cost)
    assert out.shape == (2, 16, 4, 6, 6)
    alone = embed(cost[:, :, 2:3])
    assert torch.allclose(out[:, :, 2:3], alone, atol=1e-6)
    assert torch.allclose(embed(cost, class_chunk=3), out, atol=1e-6)


def test_window_partition_round_trip():
    x = torch.randn(2, 8, 12, 5)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 5)
    assert torch.equal(windows[0].reshape(4, 4, 5), x[0, :4, :4])
    assert torch.equal(window_merge(windows, 4, 8, 12), x)


def test_shifted_window_mask_blocks_only_wrapped_regions():
    mask = shifted_window_mask(8, 8, window=4, shift=2)
    assert mask.shape == (4, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, SWIN_MASK_VALUE}
    # the top-left window holds one contiguous region: nothing masked
    assert (mask[0] == 0).all()
    # the bottom-right window mixes four regions; a token never masks itself
    assert (mask[3] != 0).any()
    assert (mask[3].diagonal() == 0).all()
    assert torch.equal(mask, mask.transpose(1, 2))


def test_official_24x24_mask_has_four_windows_of_144():
    mask = shifted_window_mask(24, 24, window=12, shift=6)
    assert mask.shape == (4, 144, 144)
    # window 3 (bottom-right) mixes 4 regions of 36 tokens: 144*144 - 4*36*36 pairs are masked
    assert int((mask[3] != 0).sum()) == 144 * 144 - 4 * 36 * 36


def test_swin_block_shapes_and_guidance_changes_output():
    block = GuidedSwinBlock(dim=16, guidance_dim=8, heads=2, window=4, shift=2)
    x, g = torch.randn(3, 64, 16), torch.randn(3, 64, 8)
    out = block(x, g, 8, 8)
    assert out.shape == x.shape
    assert not torch.allclose(out, block(x, torch.zeros_like(g), 8, 8))


def test_swin_block_small_grid_is_one_window_and_bad_grid_is_refused():
    block = GuidedSwinBlock(dim=16, guidance_dim=0, heads=2, window=12, shift=6)
    assert block(torch.randn(1, 36, 16), None, 6, 6).shape == (1, 36, 16)
    with pytest.raises(ConfigError):
        block(torch.randn(1, 30 * 30, 16), None, 30, 30)


def test_spatial_aggregation_is_per_class_and_chunkable():
    spatial = SpatialAggregation(dim=16, guidance_dim=8, heads=2, window=4)
    x, g = torch.randn(2, 16, 5, 8, 8), torch.randn(2, 8, 8, 8)
    out = spatial(x, g)
    assert out.shape == x.shape
    assert torch.allclose(spatial(x, g, class_chunk=2), out, atol=1e-5)
    assert torch.allclose(spatial(x[:, :, 1:2], g), out[:, :, 1:2], atol=1e-5)


def test_linear_attention_matches_explicit_formula():
    q, k, v = torch.randn(2, 4, 3, 5), torch.randn(2, 6, 3, 5), torch.randn(2, 6, 3, 5)
    out = linear_attention(q, k, v)
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    n, l_, h = 1, 2, 1
    weights = torch.stack([fq[n, l_, h] @ fk[n, s, h] for s in range(6)])
    expected = (weights[:, None] * v[n, :, h]).sum(0) / (weights.sum() + 1e-6)
    assert torch.allclose(out[n, l_, h], expected, atol=1e-5)


def test_class_aggregation_is_permutation_equivariant_with_padding_and_pooling():
    layer = ClassAggregation(dim=16, guidance_dim=8, heads=2, pad_len=9)
    with torch.no_grad():
        layer.pad_token.normal_()
        layer.pad_guidance.normal_()
    x, g = torch.randn(2, 16, 6, 8, 8), torch.randn(2, 6, 8)
    perm = torch.randperm(6)
    for pool in ((1, 1), (2, 2)):
        out = layer(x, g, pool)
        assert out.shape == x.shape
        assert torch.allclose(layer(x[:, :, perm], g[:, perm], pool), out[:, :, perm], atol=1e-5)


def test_class_aggregation_pooled_branch_keeps_pooled_input():
    """Official quirk: the output is x + up(pool(x) + delta), so a zero-delta layer adds up(pool(x))."""
    layer = ClassAggregation(dim=16, guidance_dim=0, heads=2)
    with torch.no_grad():
        for p in list(layer.attn.v.parameters()) + list(layer.mlp.fc2.parameters()):
            p.zero_()
    x = torch.randn(1, 16, 3, 4, 4)
    assert torch.allclose(layer(x, None, (1, 1)), 2 * x, atol=1e-6)


def test_guided_up_doubles_resolution():
    up = GuidedUp(32, 16, guidance_dim=8)
    out = up(torch.randn(3, 32, 5, 5), torch.randn(3, 8, 10, 10))
    assert out.shape == (3, 16, 10, 10)
    with pytest.raises(ConfigError):
        GuidedUp(32, 24, 8)


def test_class_aggregation_pixel_slices_give_the_same_result():
    layer = ClassAggregation(dim=16, guidance_dim=8, heads=2, pad_len=9)
    with torch.no_grad():
        layer.pad_token.normal_()
        layer.pad_guidance.normal_()
    x, g = torch.randn(2, 16, 6, 4, 4), torch.randn(2, 6, 8)
    for pool in ((1, 1), (2, 2)):
        whole = layer(x, g, pool)
        for chunk in (1, 4):
            assert torch.allclose(layer(x, g, pool, class_chunk=chunk), whole, atol=1e-5)
