"""Converting official PartCATSeg checkpoints: key map, DINOv2 hub layout -> transformers, round trips."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import ovparts
from ovparts.cli.convert import convert_partcatseg
from ovparts.convert.tokenizer import with_tokenizer_ids
from ovparts.errors import CheckpointError
from ovparts.methods.catseg.convert import convert_catseg_state_dict
from ovparts.methods.partcatseg.convert import convert_partcatseg_checkpoint, convert_partcatseg_state_dict
from ovparts.methods.partcatseg.model import PartCatSeg, PartCatSegConfig
from ovparts.testing import tiny_tokenizer_folder

from .checks import assert_text_path_follows_tokenizer, vocab_size
from .official_catseg import official_catseg
from .official_partcatseg import DINO_PATCH, DINO_SIDE, hub_dinov2_tokens, official_partcatseg

HEAD = "sem_seg_head.predictor.transformer."
DINO = "backbone.dinov2."
NATIVE = DINO_PATCH * DINO_SIDE  # the DINO input side whose grid needs no position interpolation


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The shared CPU is oversubscribed: one intra-op thread runs these tiny models ~100x faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def official(tokenizer_dir):
    return official_partcatseg(vocab=vocab_size(tokenizer_dir))


@pytest.fixture(scope="module")
def converted(official, tokenizer_dir):
    result = convert_partcatseg_state_dict(official)
    config = with_tokenizer_ids({**result.config, "dino_image_size": NATIVE}, tokenizer_dir)
    model = PartCatSeg(PartCatSegConfig.from_dict(config), tokenizer_folder=tokenizer_dir, load_dino=False)
    model.load_checked_state_dict(result.state_dict, source="synthetic")
    return result, model.eval()


def test_every_key_maps_except_the_unused_object_stack(official, converted):
    result, model = converted
    assert result.missing == []
    # unused keys are listed under the names the user finds in their file, each exactly once
    stack = [k for k in official if k.startswith(HEAD + "layers_object.") and not k.endswith("attn_mask")]
    assert result.leftover == sorted(stack)
    assert any(HEAD + "layers_object.*" in note for note in result.notes)
    assert "head.layers_object" not in result.report()
    cfg = model.config
    assert (
        cfg.faithful and cfg.switch("object_layers") == "shared" and cfg.switch("class_attention") == "query"
    )
    assert cfg.templates == "imagenet" and cfg.head_config.prompts == 80 and cfg.head_config.pad_len == 0
    assert cfg.dino_config["hidden_size"] == 64 and cfg.dino_config["num_hidden_layers"] == 2
    assert cfg.dino_config["image_size"] == NATIVE and cfg.head["pooling_eval"] == [2, 2]


def test_stage_b_background_and_stage_a_tensors_land_where_they_should(official, converted):
    _, model = converted
    state = model.state_dict()
    pairs = {
        HEAD + "conv1.weight": "head.cost_embed.conv.weight",
        HEAD + "conv2.weight": "head.cost_embed_specific.conv.weight",
        HEAD + "conv_proj_feat.bias": "head.proj_feat.bias",
        HEAD
        + "layers_specific_part.1.attention.attention.k.weight": "head.layers_specific.1.classes.attn.k.weight",
        HEAD
        + "layers_specific_part.0.swin_block.block_2.mlp.fc1.bias": "head.layers_specific.0.spatial.block2.mlp.fc1.bias",
        HEAD + "layers.1.attention.MLP.2.weight": "head.layers.1.classes.mlp.fc2.weight",
        HEAD + "decoder_guidance_projection.1.0.weight": "head.decoder_guidance_proj.1.weight",
        DINO + "patch_embed.proj.weight": "dino.encoder.embeddings.patch_embeddings.projection.weight",
        DINO + "norm.bias": "dino.encoder.layernorm.bias",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(state[ours], official[theirs]), ours
    torch.testing.assert_close(
        state["background_embedding"], official["sem_seg_head.predictor.non_object_embedding"][0]
    )
    assert "background_embedding" in dict(model.named_buffers())


def test_dinov2_from_the_hub_layout_computes_the_hub_forward(official, converted):
    _, model = converted
    hub = {k[len(DINO) :]: v for k, v in official.items() if k.startswith(DINO)}
    pixels = torch.randn(2, 3, NATIVE, NATIVE)
    with torch.no_grad():
        ours = model.dino.tokens(pixels)
        ref = hub_dinov2_tokens(hub, pixels)
    torch.testing.assert_close(ours.flatten(2).transpose(1, 2), ref, atol=1e-5, rtol=1e-4)


def test_checkpoint_file_round_trip_and_the_cli(official, tmp_path, tokenizer_dir):
    path = tmp_path / "partcatseg_voc.pth"
    torch.save({"model": official, "iteration": 19999}, path)
    out = tmp_path / "converted"
    result = convert_partcatseg_checkpoint(path, out, tokenizer=tokenizer_dir)
    assert "PartCATSeg" in result.report()
    model = ovparts.load_model("partcatseg", weights=str(out), config={"dino_image_size": NATIVE})
    assert_text_path_follows_tokenizer(model, tokenizer_dir)
    vocab = ovparts.Vocabulary.parse("dog: head, tail; cat: head")
    with torch.no_grad():
        logits = model.predict(torch.randn(1, 3, 64, 64), vocab)
    assert logits.parts.shape == (1, 3, 16, 16) and logits.background.shape == (1, 1, 16, 16)
    again = tmp_path / "cli"
    cli = CliRunner().invoke(convert_partcatseg, [str(path), str(again), "--tokenizer", str(tokenizer_dir)])
    assert cli.exit_code == 0, cli.output
    assert "Saved to" in cli.output and (again / "model.safetensors").is_file()
    assert HEAD + "layers_object.0.attention.MLP.0.bias" in cli.output and "head.layers_" not in cli.output


def test_missing_tensors_are_named_as_in_the_official_file(official, tmp_path):
    broken = dict(official)
    for key in (DINO + "blocks.1.attn.qkv.weight", "sem_seg_head.predictor.non_object_embedding"):
        del broken[key]
    result = convert_partcatseg_state_dict(broken)
    assert len(result.missing) == 4  # q, k, v and the background vector
    assert sorted(set(result.missing_official)) == [
        DINO + "blocks.1.attn.qkv.weight",
        "sem_seg_head.predictor.non_object_embedding",
    ]
    path = tmp_path / "truncated.pth"
    torch.save({"model": broken}, path)
    with pytest.raises(
        CheckpointError, match=r"lacks 4 .*\(e\.g\. sem_seg_head\.predictor\.non_object_embedding\)"
    ):
        convert_partcatseg_checkpoint(path, tmp_path / "out", tokenizer=tiny_tokenizer_folder())


def test_wrong_checkpoints_are_refused_in_one_sentence(official, tmp_path):
    with pytest.raises(CheckpointError, match="convert catseg"):
        convert_partcatseg_state_dict(official_catseg("old"))
    with pytest.raises(CheckpointError, match="convert partcatseg"):
        convert_catseg_state_dict(official)
    no_patches = {k: v for k, v in official.items() if k != DINO + "patch_embed.proj.weight"}
    with pytest.raises(CheckpointError, match=r"lacks backbone\.dinov2\.patch_embed\.proj\.weight,"):
        convert_partcatseg_state_dict(no_patches)
    no_dino = {k: v for k, v in official.items() if not k.startswith(DINO)}
    with pytest.raises(CheckpointError, match="dinov2"):
        convert_partcatseg_state_dict(no_dino)
    broken = dict(official)
    broken[HEAD + "conv_proj_feat.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(CheckpointError, match="conv_proj_feat|proj_feat"):
        convert_partcatseg_state_dict(broken)
    pickled = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "extra": NotATensor()}, pickled)
    with pytest.raises(CheckpointError, match="plain PyTorch checkpoint"):
        convert_partcatseg_checkpoint(pickled, tmp_path / "never")


class NotATensor:
    """Any pickled class: a checkpoint holding one must be refused, not unpickled."""


def test_mounted_under_ovparts_convert(official, tmp_path):
    from ovparts.cli import main

    path = tmp_path / "official.pth"
    torch.save({"model": official}, path)
    result = CliRunner().invoke(
        main,
        [
            "convert",
            "partcatseg",
            str(path),
            str(tmp_path / "out"),
            "--tokenizer",
            str(tiny_tokenizer_folder()),
        ],
    )
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(
        main, ["convert", "partcatseg", str(tmp_path / "missing.pth"), str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "No checkpoint file" in bad.output
