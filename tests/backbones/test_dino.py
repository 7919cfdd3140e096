"""DINO guidance through transformers: same tokens as the library's own forward, any grid, hub folders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovparts.backbones.dino import DinoGuidance, build_dino, resize_position_table
from ovparts.errors import ConfigError
from ovparts.testing import TINY_DINO_V1, TINY_DINOV2, write_dino_checkpoint


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The shared CPU is oversubscribed: one intra-op thread runs these tiny models ~100x faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["dinov2", "dino"])
def encoder(request):
    torch.manual_seed(0)
    config = TINY_DINOV2 if request.param == "dinov2" else TINY_DINO_V1
    return request.param, build_dino(request.param, dict(config)).eval()


@pytest.mark.parametrize("side", [32, 48])
def test_tokens_equal_the_transformers_forward(encoder, side):
    kind, model = encoder
    guidance = DinoGuidance(model, image_size=side)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        ours = guidance.tokens(x)
        extra = {"interpolate_pos_encoding": True} if kind == "dino" else {}
        ref = model(x, **extra).last_hidden_state[:, 1:]
    grid = side // 8
    assert ours.shape == (2, 32, grid, grid)
    torch.testing.assert_close(ours, ref.transpose(1, 2).reshape(2, 32, grid, grid))


def test_forward_resizes_the_input_and_returns_one_map_per_size(encoder):
    _, model = encoder
    guidance = DinoGuidance(model, image_size=32)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        maps = guidance(x, [(4, 4), (8, 8), (16, 16)])
        tokens = guidance.tokens(F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False))
    assert [tuple(m.shape) for m in maps] == [(1, 32, 4, 4), (1, 32, 8, 8), (1, 32, 16, 16)]
    # the 4x4 map is the token grid itself; the others are its bilinear resizes
    torch.testing.assert_close(maps[0], tokens)
    torch.testing.assert_close(
        maps[1], F.interpolate(tokens, size=(8, 8), mode="bilinear", align_corners=False)
    )


def test_hub_interpolation_differs_off_grid_only():
    table = torch.randn(1, 17, 8)
    assert resize_position_table(table, (4, 4), hub_offset=True) is table
    hub = resize_position_table(table, (6, 6), hub_offset=True)
    exact = resize_position_table(table, (6, 6), hub_offset=False)
    assert hub.shape == exact.shape == (1, 37, 8)
    torch.testing.assert_close(hub[:, :1], table[:, :1])
    assert not torch.allclose(hub, exact)


def test_bad_input_size_is_one_sentence():
    guidance = DinoGuidance(build_dino("dinov2", dict(TINY_DINOV2)), image_size=30)
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        guidance(torch.randn(1, 3, 30, 30), [(4, 4)])
    with pytest.raises(ConfigError, match="Unknown DINO kind"):
        build_dino("dinov3")


@pytest.mark.parametrize("kind", ["dinov2", "dino"])
def test_hub_folder_round_trip(tmp_path, kind):
    folder = write_dino_checkpoint(tmp_path / kind, kind=kind, seed=3)
    assert (folder / "config.json").is_file()
    loaded = build_dino(kind, weights=str(folder))
    again = build_dino(kind, weights=str(folder))
    for (name, a), (_, b) in zip(loaded.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert DinoGuidance(loaded, lr_multiplier=0.01).lr_multiplier == 0.01
