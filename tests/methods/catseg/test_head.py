"""The CAT-Seg aggregator head alone: built from its config, fed plain tensors."""

from __future__ import annotations

import pytest
import torch

from ovparts.errors import ConfigError
from ovparts.methods.catseg.model import DROPPED_CLASS_LOGIT, CatSegAggregator, CatSegHeadConfig

TINY = dict(
    text_dim=32,
    text_guidance_dim=16,
    appearance_dim=24,
    appearance_guidance_dim=16,
    decoder_dims=(32, 16),
    decoder_guidance_dims=(20, 12),
    decoder_guidance_proj_dims=(8, 4),
    hidden_dim=32,
    num_layers=2,
    heads=4,
    window=4,
    pad_len=0,
)


def make(**overrides) -> CatSegAggregator:
    torch.manual_seed(0)
    head = CatSegAggregator(CatSegHeadConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # padding parameters start at zero; make them matter in the tests
        for name, p in head.named_parameters():
            if "pad_" in name:
                p.normal_()
    return head


def inputs(b: int = 2, t: int = 5, p: int = 1, grid: int = 8):
    torch.manual_seed(1)
    image = torch.randn(b, 32, grid, grid)
    text = torch.randn(b, t, p, 32)
    guidance = [torch.randn(b, 24, grid, grid), torch.randn(b, 20, 2 * grid, 2 * grid)]
    guidance.append(torch.randn(b, 12, 4 * grid, 4 * grid))
    return image, text, guidance


def test_full_size_defaults_match_the_official_parameter_count():
    # 2,308,961 parameters measured on the official Aggregator (CVPR ViT-B/16 config)
    head = CatSegAggregator()
    assert sum(p.numel() for p in head.parameters()) == 2_308_961


def test_shapes_and_text_without_batch_axis():
    head = make()
    image, text, guidance = inputs()
    with torch.no_grad():
        out = head(image, text, guidance)
        assert out.shape == (2, 5, 32, 32)
        shared = head(image, text[0], guidance)
        assert torch.allclose(shared[0], out[0], atol=1e-5)


@pytest.mark.parametrize("pad_len", [0, 9])
def test_permutation_equivariance_over_classes(pad_len):
    head = make(pad_len=pad_len)
    image, text, guidance = inputs(t=6)
    perm = torch.randperm(6)
    with torch.no_grad():
        out = head(image, text, guidance)
        shuffled = head(image, text[:, perm], guidance)
    assert torch.allclose(shuffled, out[:, perm], atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_chunked_equals_unchunked(chunk):
    head = make(pad_len=9, prompts=2)
    image, text, guidance = inputs(t=7, p=2)
    with torch.no_grad():
        whole = head(image, text, guidance)
        chunked = head(image, text, guidance, class_chunk=chunk)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_chunked_equals_unchunked_in_training_with_pooling_and_gradients():
    head = make().train()
    image, text, guidance = inputs(t=4)
    whole = head(image, text, guidance)
    chunked = head(image, text, guidance, class_chunk=3)
    assert torch.allclose(whole, chunked, atol=1e-5)
    chunked.sum().backward()
    assert head.cost_embed.conv.weight.grad is not None


def test_top_k_keeps_best_classes_and_drops_the_rest():
    head = make(pad_len=3)
    image, text, guidance = inputs(b=1, t=6)
    # make classes 1, 3 and 4 the best matches of some pixel
    for c in (1, 3, 4):
        text[0, c, 0] = image[0, :, c, c]
    with torch.no_grad():
        out = head(image, text, guidance)
    dropped = (out == DROPPED_CLASS_LOGIT).flatten(2).all(-1)[0]
    assert dropped.tolist() == [True, False, True, False, False, True]
    with torch.no_grad():
        kept = make(pad_len=3)(image, text[:, [1, 3, 4]], guidance)
    assert torch.allclose(out[:, [1, 3, 4]], kept, atol=1e-5)


def test_bad_inputs_are_refused_with_config_errors():
    head = make()
    image, text, guidance = inputs()
    with pytest.raises(ConfigError, match="prompt template"):
        head(image, text.expand(-1, -1, 3, -1), guidance)
    with pytest.raises(ConfigError, match="match the image"):
        head(image, text[..., :16], guidance)
    with pytest.raises(ConfigError):
        CatSegHeadConfig(hidden_dim=30, heads=4)
    with pytest.raises(ConfigError, match="Unknown"):
        CatSegHeadConfig.from_dict({"hidden": 3})


def test_config_round_trips_through_json_lists():
    cfg = CatSegHeadConfig(**TINY)
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    assert CatSegHeadConfig.from_dict(data) == cfg
