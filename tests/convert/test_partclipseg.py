import fractions
import json

import click
import pytest
import torch
from click.testing import CliRunner
from transformers import CLIPSegForImageSegmentation

import ovparts
from ovparts.cli import OvpartsGroup
from ovparts.cli.convert import convert_partclipseg
from ovparts.errors import CheckpointError
from ovparts.methods.partclipseg.convert import convert_state_dict, read_official_checkpoint, write_checkpoint
from ovparts.methods.partclipseg.model import CONFIGS
from ovparts.testing import TINY_CLIPSEG, clipseg_hf_config, tiny_tokenizer_folder, tokenizer_special_ids

from .checks import assert_text_path_follows_tokenizer

PREFIX = "partclipseg_model."


def official_state_dict(seed: int = 0, tokenizer=None) -> dict[str, torch.Tensor]:
    """Keys as the official PartCLIPSeg saves them (official ``torch.save`` layout), with the tiny architecture's shapes.

    The CLIPSeg part comes from transformers itself; the PartCLIPSeg extras are listed by hand. ``tokenizer``
    (a folder) sets the token embedding's rows; the tiny tokenizer's 514 by default.
    """
    torch.manual_seed(seed)
    special = tokenizer_special_ids(tokenizer) if tokenizer is not None else None
    hf = CLIPSegForImageSegmentation(clipseg_hf_config(TINY_CLIPSEG, special))
    state = {PREFIX + k: v.clone() for k, v in hf.state_dict().items()}
    r, d, v = (
        TINY_CLIPSEG["reduce_dim"],
        TINY_CLIPSEG["projection_dim"],
        TINY_CLIPSEG["vision_config"]["hidden_size"],
    )
    shapes = {
        "decoder.cond_film_mul.weight": (r, d),
        "decoder.cond_film_mul.bias": (r,),
        "decoder.cond_film_add.weight": (r, d),
        "decoder.cond_film_add.bias": (r,),
        "decoder.part_obj_with_cond_embed.0.weight": (r, r, 3, 3),
        "decoder.part_obj_with_cond_embed.0.bias": (r,),
        "decoder.part_obj_with_cond_embed.2.weight": (r, r // 2, 4, 4),
        "decoder.part_obj_with_cond_embed.2.bias": (r // 2,),
        "decoder.part_obj_with_cond_embed.4.weight": (r // 2, 1, 4, 4),
        "decoder.part_obj_with_cond_embed.4.bias": (1,),
        "decoder.part_obj_mlp.0.weight": (r, 2 * r),
        "decoder.part_obj_mlp.0.bias": (r,),
        "decoder.reduce_cond_embed.weight": (d, 2 * d),
        "decoder.reduce_cond_embed.bias": (d,),
        "non_object_embedding": (1, d),
        "visual_adapter.fc.0.weight": (v // 4, v),
        "visual_adapter.fc.2.weight": (v, v // 4),
        "text_adapter.fc.0.weight": (d // 4, d),
        "text_adapter.fc.2.weight": (d, d // 4),
        "tunable_linear.weight": (1000, d),
    }
    for key, shape in shapes.items():
        state[PREFIX + key] = torch.randn(shape) * 0.1
    state[PREFIX + "clip.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    state[PREFIX + "clip.vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    return state


def save_official(path, state=None):
    payload = {
        "model": official_state_dict() if state is None else state,
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)}},
            "param_groups": [],
        },
        "scheduler": {"last_epoch": 19999, "base_lrs": [1e-4]},
        "iteration": 19999,
    }
    torch.save(payload, path)
    return path


def cli():
    """The command under an ovparts-style group, as the lead registers it (`ovparts convert partclipseg`)."""

    @click.group(cls=OvpartsGroup)
    def root() -> None:
        pass

    @root.group()
    def convert() -> None:
        pass

    convert.add_command(convert_partclipseg)
    return root


def test_cli_round_trip(tmp_path, tokenizer_dir):
    official = official_state_dict(tokenizer=tokenizer_dir)
    path = save_official(tmp_path / "partclipseg_voc_oracle.pth", official)
    out = tmp_path / "converted"
    args = ["convert", "partclipseg", str(path), str(out), "--config", "tiny"]
    result = CliRunner().invoke(cli(), [*args, "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 0, result.output
    assert "dropped on purpose" in result.output and "unconsumed" not in result.output
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    model = ovparts.load_model("partclipseg", weights=str(out))
    assert model.config.faithful is True
    # the base config's (tiny) ids must not survive: config.json names the tokenizer written beside it
    assert_text_path_follows_tokenizer(model, tokenizer_dir)
    special = tokenizer_special_ids(tokenizer_dir)
    assert {k: model.config.text_config[k] for k in special} == special
    if special["eos_token_id"] != 513:  # a folder written by the old converter: the tiny ids, refused at load
        stale = json.loads((out / "config.json").read_text())
        stale["text_config"].update(bos_token_id=512, eos_token_id=513, pad_token_id=513)
        (out / "config.json").write_text(json.dumps(stale))
        with pytest.raises(CheckpointError, match="start-of-text id 512 is not the start-of-text id 49406"):
            ovparts.load_model("partclipseg", weights=str(out))
        (out / "config.json").write_text(json.dumps({**stale, "text_config": model.config.text_config}))
    ours = model.state_dict()
    for key, tensor in official.items():
        name = key[len(PREFIX) :]
        if name.startswith(("text_adapter.", "tunable_linear.")) or name.endswith("position_ids"):
            continue
        mine = ours["backbone." + name if name.startswith("clip.") else name]
        assert torch.equal(mine, tensor), key
    vocab = ovparts.Vocabulary.parse("dog: head, tail; cat: ear")
    with torch.no_grad():
        assert model.predict(torch.randn(1, 3, 64, 64), vocab).parts.shape == (1, 3, 64, 64)
    # the output folder is never overwritten
    result = CliRunner().invoke(cli(), [*args, "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_conversion_accounts_for_every_key():
    official = official_state_dict()
    official[PREFIX + "decoder.something_new.weight"] = torch.zeros(2)
    conversion = convert_state_dict(official, CONFIGS["tiny"])
    assert conversion.unconsumed == [PREFIX + "decoder.something_new.weight"]
    assert not conversion.missing
    assert len(conversion.dropped) == 5  # two dead adapters' weights, tunable_linear, two index buffers
    assert len(conversion.state_dict) + len(conversion.dropped) + 1 == len(official)
    del official[PREFIX + "decoder.reduce_cond_embed.bias"]
    conversion = convert_state_dict(official, CONFIGS["tiny"])
    assert conversion.missing == ["decoder.reduce_cond_embed.bias"]
    # messages name the key as it is spelled in the official file
    assert f"1 missing ({PREFIX}decoder.reduce_cond_embed.bias)" in conversion.summary()
    with pytest.raises(CheckpointError, match=f"lacks 1 tensors.*'{PREFIX}decoder.reduce_cond_embed.bias'"):
        write_checkpoint(conversion, "/nonexistent/never-written", tiny_tokenizer_folder())


def test_a_tokenizer_larger_than_the_token_embedding_is_refused(tmp_path, clip_bpe_tokenizer_dir):
    conversion = convert_state_dict(official_state_dict(), CONFIGS["tiny"])  # 514 token rows
    with pytest.raises(CheckpointError, match="49408 tokens, more than the checkpoint's 514"):
        write_checkpoint(conversion, tmp_path / "out", clip_bpe_tokenizer_dir)
    assert not (tmp_path / "out").exists()
    with pytest.raises(CheckpointError, match="no CLIP tokenizer files"):
        write_checkpoint(conversion, tmp_path / "out", tmp_path)


def test_wrong_shapes_are_refused():
    official = official_state_dict()
    official[PREFIX + "decoder.part_obj_mlp.0.weight"] = torch.zeros(16, 17)
    with pytest.raises(CheckpointError, match=f"'{PREFIX}decoder.part_obj_mlp.0.weight' has shape"):
        convert_state_dict(official, CONFIGS["tiny"])
    del official[PREFIX + "non_object_embedding"]
    with pytest.raises(CheckpointError, match=f"lacks '{PREFIX}non_object_embedding'"):
        convert_state_dict(official, CONFIGS["tiny"])


def test_non_partclipseg_files_are_refused(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a zip-based PyTorch file"):
        read_official_checkpoint(text)
    baseline = {k.replace(PREFIX, "clipseg_model."): v for k, v in official_state_dict().items()}
    with pytest.raises(CheckpointError, match="OV-PARTS CLIPSeg baseline"):
        read_official_checkpoint(save_official(tmp_path / "clipseg.pth", baseline))
    with pytest.raises(CheckpointError, match="no key starts with"):
        read_official_checkpoint(save_official(tmp_path / "other.pth", {"encoder.weight": torch.zeros(1)}))
    pickled = tmp_path / "code.pth"
    torch.save({"model": {"x": fractions.Fraction(1, 2)}}, pickled)  # arbitrary objects are never unpickled
    with pytest.raises(CheckpointError, match="never pickled code"):
        read_official_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_official_checkpoint(tmp_path / "missing.pth")
    result = CliRunner().invoke(cli(), ["convert", "partclipseg", str(text), str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Traceback" not in result.output
