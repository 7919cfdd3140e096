"""CAT-Seg's dense CLIP path on a tiny random transformers CLIP."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from ovparts.backbones.clip_dense import (
    apply_finetune,
    clip_dense_features,
    default_guidance_layers,
    dense_block,
    encoder_block,
    finetune_parameter_names,
    vision_embeddings,
)
from ovparts.errors import ConfigError


@pytest.fixture(scope="module")
def clip() -> CLIPModel:
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=100, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=24,
    )  # fmt: skip
    return CLIPModel(cfg).eval()


def test_encoder_block_matches_transformers(clip):
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = clip.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
        x = vision_embeddings(clip.vision_model, pixels)
        assert torch.allclose(x, ref[0], atol=1e-5)
        for i, layer in enumerate(clip.vision_model.encoder.layers):
            x = encoder_block(layer, x)
            assert torch.allclose(x, ref[i + 1], atol=1e-4)


def test_position_table_is_resized_like_transformers(clip):
    pixels = torch.randn(1, 3, 48, 64)  # 6 x 8 tokens from a 4 x 4 table
    with torch.no_grad():
        ours = vision_embeddings(clip.vision_model, pixels)
        ref = clip.vision_model.embeddings(pixels, interpolate_pos_encoding=True)
        ref = clip.vision_model.pre_layrnorm(ref)
    assert ours.shape == (1, 1 + 48, 32)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_dense_features_shapes_and_guidance_are_hidden_states(clip):
    pixels = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        dense, guidance = clip_dense_features(clip.vision_model, clip.visual_projection, pixels, (0, 2))
        ref = clip.vision_model(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=True)
    assert dense.shape == (2, 24, 6, 6)
    assert [g.shape for g in guidance] == [(2, 32, 6, 6), (2, 32, 6, 6)]
    expected = ref.hidden_states[3][:, 1:].transpose(1, 2).reshape(2, 32, 6, 6)
    assert torch.allclose(guidance[1], expected, atol=1e-4)


def test_dense_block_variants_follow_their_formulas(clip):
    layer = clip.vision_model.encoder.layers[-1]
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        v = layer.self_attn.out_proj(layer.self_attn.v_proj(layer.layer_norm1(x)))
        for residual, r in (("cls", x[:, :1]), ("token", x)):
            expected = (v + r) + layer.mlp(layer.layer_norm2(v + r))
            assert torch.allclose(dense_block(layer, x, residual), expected, atol=1e-5)
        # no token mixing: changing one token leaves the others' outputs alone (CLS excepted for "cls")
        y = x.clone()
        y[:, 3] += torch.randn(32)  # a constant shift would vanish in the layer norm
        for residual in ("cls", "token"):
            a, b = dense_block(layer, x, residual), dense_block(layer, y, residual)
            assert torch.allclose(a[:, [0, 1, 2, 4]], b[:, [0, 1, 2, 4]], atol=1e-6)
            assert not torch.allclose(a[:, 3], b[:, 3])
        # the CLS residual makes every token depend on the CLS input; the per-token one does not
        z = x.clone()
        z[:, 0] += torch.randn(32)
        assert not torch.allclose(dense_block(layer, x, "cls")[:, 2], dense_block(layer, z, "cls")[:, 2])
        assert torch.allclose(dense_block(layer, x, "token")[:, 2], dense_block(layer, z, "token")[:, 2])
    with pytest.raises(ConfigError):
        dense_block(layer, x, "mean")


def test_dense_variants_differ_end_to_end(clip):
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, _ = clip_dense_features(clip.vision_model, clip.visual_projection, pixels, residual="cls")
        b, _ = clip_dense_features(clip.vision_model, clip.visual_projection, pixels, residual="token")
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_bad_sizes_and_layers_are_refused(clip):
    with pytest.raises(ConfigError, match="multiple of the patch"):
        clip_dense_features(clip.vision_model, clip.visual_projection, torch.randn(1, 3, 30, 32))
    with pytest.raises(ConfigError, match="Guidance layer"):
        clip_dense_features(clip.vision_model, clip.visual_projection, torch.randn(1, 3, 32, 32), (3,))


def test_default_guidance_layers():
    assert default_guidance_layers(12) == (3, 7)
    assert default_guidance_layers(24) == (7, 15)
    assert default_guidance_layers(4) == (0, 1)


def test_finetune_modes(clip):
    qv = finetune_parameter_names(clip, "qv")
    # 2 text + 4 vision layers, q and v weights each
    assert len(qv) == 12 and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in qv)
    att = finetune_parameter_names(clip, "attention")
    assert all(n.startswith("vision_model.") for n in att)
    assert "vision_model.embeddings.position_embedding.weight" in att
    assert len(att) == 4 * 8 + 1
    assert finetune_parameter_names(clip, "none") == []
    trainable = apply_finetune(clip, "qv")
    assert {n for n, p in clip.named_parameters() if p.requires_grad} == set(trainable)
    apply_finetune(clip, "full")
    assert all(p.requires_grad for p in clip.parameters())
    with pytest.raises(ConfigError):
        finetune_parameter_names(clip, "lora")
