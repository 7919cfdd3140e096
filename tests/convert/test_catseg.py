"""Converting official CAT-Seg checkpoints (both releases), checked against OpenAI-layout reference math."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import ovparts
from ovparts.cli.convert import convert_catseg
from ovparts.convert.tokenizer import with_tokenizer_ids
from ovparts.errors import CheckpointError
from ovparts.methods.catseg.convert import (
    convert_catseg_checkpoint,
    convert_catseg_state_dict,
    load_official_checkpoint,
)
from ovparts.methods.catseg.model import CatSeg, CatSegConfig
from ovparts.testing import tiny_tokenizer_folder

from .checks import assert_text_path_follows_tokenizer, vocab_size
from .official_catseg import GRID, PATCH, official_catseg

CLIP = "sem_seg_head.predictor.clip_model."


class NotATensor:
    """Any pickled class: a checkpoint holding one must be refused, not unpickled."""


@pytest.fixture(scope="module", params=["cvpr", "old"])
def converted(request, tokenizer_dir):
    official = official_catseg(request.param, vocab=vocab_size(tokenizer_dir))
    result = convert_catseg_state_dict(official)
    return request.param, official, result, build(result, tokenizer_dir)


def build(result, tokenizer_dir=None) -> CatSeg:
    folder = tokenizer_dir or tiny_tokenizer_folder()
    config = with_tokenizer_ids(result.config, folder)
    model = CatSeg(CatSegConfig.from_dict(config), tokenizer_folder=folder).eval()
    model.load_checked_state_dict(result.state_dict, source="synthetic")
    return model


def test_every_key_maps_and_the_config_is_read_from_shapes(converted):
    variant, official, result, model = converted
    assert result.variant == variant
    assert result.leftover == [] and result.missing == [] and result.notes == []
    cfg = model.config
    assert cfg.image_size == GRID * PATCH and cfg.vision_config["num_hidden_layers"] == 3
    head = cfg.head_config
    if variant == "cvpr":
        assert (cfg.dense_residual, cfg.guidance, cfg.templates, cfg.finetune) == (
            "cls",
            "clip",
            "catseg",
            "qv",
        )
        assert head.pad_len == 256 and head.prompts == 1 and cfg.clip_guidance_dims == [24, 12]
    else:
        assert (cfg.dense_residual, cfg.guidance, cfg.templates, cfg.finetune) == (
            "token",
            "resnet",
            "imagenet",
            "attention",
        )
        assert head.pad_len == 0 and head.prompts == 80 and cfg.resnet["blocks"] == [1, 2, 1]
    assert head.window == 2
    # the official tensors arrive unchanged where no layout change is needed
    assert torch.equal(
        model.head.layers[1].classes.mlp.fc2.weight,
        official["sem_seg_head.predictor.transformer.layers.1.attention.MLP.2.weight"],
    )


def _quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def _openai_qkv(sd, prefix):
    if f"{prefix}.attn.in_proj_weight" in sd:
        w = sd[f"{prefix}.attn.in_proj_weight"]
    else:
        w = torch.cat([sd[f"{prefix}.attn.{n}_proj_weight"] for n in "qkv"])
    return w, sd[f"{prefix}.attn.in_proj_bias"]


def _openai_block(sd, prefix, x, mask=None, dense=None):
    """One OpenAI CLIP residual block on (B, N, C), written from the OpenAI formulas, heads = C / 64."""
    c = x.shape[-1]
    w, b = _openai_qkv(sd, prefix)
    y = F.layer_norm(x, (c,), sd[f"{prefix}.ln_1.weight"], sd[f"{prefix}.ln_1.bias"])
    q, k, v = F.linear(y, w, b).chunk(3, dim=-1)
    out_w, out_b = sd[f"{prefix}.attn.out_proj.weight"], sd[f"{prefix}.attn.out_proj.bias"]
    if dense is None:
        heads = max(c // 64, 1)
        split = [t.reshape(*t.shape[:2], heads, -1).transpose(1, 2) for t in (q, k, v)]
        scores = split[0] @ split[1].transpose(-1, -2) / (c // heads) ** 0.5
        if mask is not None:
            scores = scores + mask
        attn = (scores.softmax(-1) @ split[2]).transpose(1, 2).reshape(x.shape)
        x = x + F.linear(attn, out_w, out_b)
    else:  # the value path: out_proj(v) + residual
        x = F.linear(v, out_w, out_b) + (x[:, :1] if dense == "cls" else x)
    h = F.layer_norm(x, (c,), sd[f"{prefix}.ln_2.weight"], sd[f"{prefix}.ln_2.bias"])
    h = F.linear(h, sd[f"{prefix}.mlp.c_fc.weight"], sd[f"{prefix}.mlp.c_fc.bias"])
    return x + F.linear(_quick_gelu(h), sd[f"{prefix}.mlp.c_proj.weight"], sd[f"{prefix}.mlp.c_proj.bias"])


def _openai_dense(sd, pixels, residual, hooks):
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    c = x.shape[-1]
    x = F.layer_norm(x, (c,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("visual.transformer.resblocks."))
    taken = {}
    for i in range(layers - 1):
        x = _openai_block(sd, f"visual.transformer.resblocks.{i}", x)
        taken[i] = x
    x = _openai_block(sd, f"visual.transformer.resblocks.{layers - 1}", x, dense=residual)
    x = F.layer_norm(x, (c,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]
    return x, [taken[i] for i in hooks]


def test_dense_clip_path_matches_openai_formulas(converted):
    variant, official, _, model = converted
    sd = {k[len(CLIP) :]: v for k, v in official.items() if k.startswith(CLIP)}
    pixels = torch.randn(2, 3, GRID * PATCH, GRID * PATCH)
    with torch.no_grad():
        dense, guidance = model.image_features(pixels)
        ref, hooks = _openai_dense(sd, pixels, model.config.dense_residual, model.config.guidance_layers)
    to_map = lambda t: t[:, 1:].transpose(1, 2).reshape(2, -1, GRID, GRID)  # noqa: E731
    assert torch.allclose(dense, to_map(ref), atol=1e-4)
    if variant == "cvpr":
        up1 = F.conv_transpose2d(
            to_map(hooks[0]), official["upsample1.weight"], official["upsample1.bias"], stride=2
        )
        assert torch.allclose(guidance[1], up1, atol=1e-4)


def test_text_encoder_matches_openai_formulas(converted):
    _, official, _, model = converted
    sd = {k[len(CLIP) :]: v for k, v in official.items() if k.startswith(CLIP)}
    tokens = model.backbone.tokenizer(
        ["a photo of a dog's head"], padding="max_length", max_length=77, return_tensors="pt"
    )
    ids = tokens["input_ids"]
    with torch.no_grad():
        ours = model.backbone.clip.get_text_features(input_ids=ids)
        ours = getattr(ours, "pooler_output", ours)
        x = sd["token_embedding.weight"][ids] + sd["positional_embedding"]
        causal = torch.full((77, 77), float("-inf")).triu(1)
        for i in range(2):
            x = _openai_block(sd, f"transformer.resblocks.{i}", x, mask=causal)
        x = F.layer_norm(x, (x.shape[-1],), sd["ln_final.weight"], sd["ln_final.bias"])
        ref = x[torch.arange(1), ids.argmax(-1)] @ sd["text_projection"]
    assert torch.allclose(ours, ref, atol=1e-4)


def test_converted_model_predicts(converted):
    _, _, _, model = converted
    vocab = ovparts.Vocabulary.parse("dog: head, tail; cat: ear")
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 64), vocab)
    assert out.parts.shape == (1, 3, 16, 16) and torch.isfinite(out.parts).all()


def test_leftover_keys_are_reported_and_fp16_becomes_fp32():
    official = official_catseg("cvpr")
    official = {k: v.half() if v.is_floating_point() else v for k, v in official.items()}
    official["sem_seg_head.predictor.transformer.unused.weight"] = torch.zeros(2)
    official["criterion.empty_weight"] = torch.zeros(2)
    result = convert_catseg_state_dict(official)
    assert result.leftover == ["criterion.empty_weight", "sem_seg_head.predictor.transformer.unused.weight"]
    assert all(t.dtype == torch.float32 for t in result.state_dict.values())
    assert "2 official key(s) not used" in result.report()


def test_missing_keys_are_reported_under_the_official_names():
    official = official_catseg("cvpr")
    del official["sem_seg_head.predictor.transformer.head.bias"]
    del official["sem_seg_head.predictor.clip_model.transformer.resblocks.1.attn.in_proj_bias"]
    result = convert_catseg_state_dict(official)
    assert result.missing == [
        "backbone.clip.text_model.encoder.layers.1.self_attn.k_proj.bias",
        "backbone.clip.text_model.encoder.layers.1.self_attn.q_proj.bias",
        "backbone.clip.text_model.encoder.layers.1.self_attn.v_proj.bias",
        "head.head.bias",
    ]
    report = result.report()
    # what the user can find in (or add to) their file, each once, never ovparts' own names
    assert "2 key(s) the model needs are missing" in report
    assert "sem_seg_head.predictor.transformer.head.bias" in report and "head.head.bias," not in report
    assert report.count("resblocks.1.attn.in_proj_bias") == 1 and "self_attn" not in report


def test_every_ovparts_tensor_reads_back_to_a_key_of_the_official_file():
    from ovparts.convert.keynames import official_missing_names
    from ovparts.methods.catseg.convert import RULE_TABLES, expected_shapes

    for variant in ("cvpr", "old"):
        official = official_catseg(variant)
        expected = sorted(expected_shapes(convert_catseg_state_dict(official).config))
        for ours, names in zip(expected, official_missing_names(expected, RULE_TABLES), strict=True):
            assert any(name in official for name in names.split(" or ")), (variant, ours, names)


def test_a_tokenizer_larger_than_the_token_embedding_is_refused(tmp_path, clip_bpe_tokenizer_dir):
    path = tmp_path / "official.pth"
    torch.save({"model": official_catseg("cvpr")}, path)  # 514 token rows: the tiny tokenizer's
    with pytest.raises(CheckpointError, match="49408 tokens, more than the checkpoint's 514"):
        convert_catseg_checkpoint(path, tmp_path / "out", tokenizer=clip_bpe_tokenizer_dir)
    assert not (tmp_path / "out").exists()


def test_foreign_and_broken_checkpoints_are_refused_in_one_sentence():
    with pytest.raises(CheckpointError, match="not a CAT-Seg checkpoint"):
        convert_catseg_state_dict({"model.decoder.weight": torch.zeros(1)})
    official = official_catseg("old")
    official["sem_seg_head.predictor.transformer.layers_specific_part.0.attention.norm1.weight"] = torch.ones(
        2
    )
    with pytest.raises(CheckpointError, match="partcatseg"):
        convert_catseg_state_dict(official)
    official = official_catseg("cvpr")
    official["sem_seg_head.predictor.transformer.layers.0.attention.attention.v.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError, match="shape"):
        convert_catseg_state_dict(official)


def test_loading_files_is_safe(tmp_path):
    official = official_catseg("cvpr")
    path = tmp_path / "model_final.pth"
    torch.save({"model": official, "iteration": 79999}, path)
    assert load_official_checkpoint(path).keys() == official.keys()

    evil = tmp_path / "evil.pth"
    torch.save({"model": {"x": NotATensor()}}, evil)
    with pytest.raises(CheckpointError, match="could not be read"):
        load_official_checkpoint(evil)
    with pytest.raises(CheckpointError, match="No checkpoint file"):
        load_official_checkpoint(tmp_path / "absent.pth")


@pytest.mark.parametrize("variant", ["cvpr", "old"])
def test_cli_writes_a_checkpoint_that_load_model_reads(tmp_path, variant, tokenizer_dir):
    official = official_catseg(variant, seed=3, vocab=vocab_size(tokenizer_dir))
    path = tmp_path / "official.pth"
    torch.save({"model": official}, path)
    out = tmp_path / "converted"
    run = CliRunner().invoke(convert_catseg, [str(path), str(out), "--tokenizer", str(tokenizer_dir)])
    assert run.exit_code == 0, run.output
    assert f"CAT-Seg ({variant} version)" in run.output
    model = ovparts.load_model("catseg", weights=str(out))
    assert_text_path_follows_tokenizer(model, tokenizer_dir)
    direct = build(convert_catseg_state_dict(official), tokenizer_dir)
    vocab = ovparts.Vocabulary.parse("dog: head, tail")
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(
            model.predict(pixels, vocab).parts, direct.predict(pixels, vocab).parts, atol=1e-5
        )


def test_cli_refuses_truncated_checkpoints(tmp_path):
    official = official_catseg("cvpr")
    official = {k: v for k, v in official.items() if "decoder2" not in k}
    path = tmp_path / "broken.pth"
    torch.save(official, path)
    with pytest.raises(CheckpointError, match="lacks"):
        convert_catseg_checkpoint(path, tmp_path / "out", tokenizer=tiny_tokenizer_folder())
