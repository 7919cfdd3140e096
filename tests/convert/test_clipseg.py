"""`ovparts convert clipseg`: the OV-PARTS CLIPSeg baseline checkpoint (``clipseg_model.`` keys)."""

import click
import pytest
import torch
from click.testing import CliRunner

import ovparts
from ovparts.cli import OvpartsGroup
from ovparts.cli.convert import convert_clipseg
from ovparts.errors import CheckpointError
from ovparts.methods.clipseg.convert import convert_state_dict, read_official_checkpoint, write_checkpoint
from ovparts.methods.clipseg.model import CONFIGS
from ovparts.testing import tiny_tokenizer_folder

from .test_partclipseg import official_state_dict as partclipseg_state_dict
from .test_partclipseg import save_official

PREFIX = "clipseg_model."
# PartCLIPSeg's object-specific branch, which the baseline does not have
PARTCLIPSEG_ONLY = ("decoder.cond_film_", "decoder.part_obj_", "decoder.reduce_cond_embed.")


def official_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Keys as OV-PARTS saves its CLIPSeg baseline: PartCLIPSeg's minus its branch, under ``clipseg_model.``."""
    state = {}
    for key, value in partclipseg_state_dict(seed).items():
        name = key[len("partclipseg_model.") :]
        if not name.startswith(PARTCLIPSEG_ONLY):
            state[PREFIX + name] = value
    return state


def cli():
    @click.group(cls=OvpartsGroup)
    def root() -> None:
        pass

    @root.group()
    def convert() -> None:
        pass

    convert.add_command(convert_clipseg)
    return root


def test_cli_round_trip(tmp_path):
    official = official_state_dict()
    path = save_official(tmp_path / "clipseg_voc.pth", official)
    out = tmp_path / "converted"
    args = [
        "convert",
        "clipseg",
        str(path),
        str(out),
        "--config",
        "tiny",
        "--tokenizer",
        str(tiny_tokenizer_folder()),
    ]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "dropped on purpose" in result.output and "unconsumed" not in result.output
    model = ovparts.load_model("clipseg", weights=str(out))
    assert model.config.visual_adapter and model.config.non_object_embedding
    ours = model.state_dict()
    for key, tensor in official.items():
        name = key[len(PREFIX) :]
        if name.startswith(("text_adapter.", "tunable_linear.")) or name.endswith("position_ids"):
            continue
        assert torch.equal(ours["backbone." + name if name.startswith("clip.") else name], tensor), key
    vocab = ovparts.Vocabulary.parse("dog: head, tail; cat: ear")
    with torch.no_grad():
        logits = model.predict(torch.randn(1, 3, 64, 64), vocab)
    assert logits.parts.shape == (1, 3, 64, 64) and logits.background.shape == (1, 1, 64, 64)
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 2 and "already exists" in result.output


def test_conversion_accounts_for_every_key():
    official = official_state_dict()
    official[PREFIX + "decoder.part_obj_mlp.0.weight"] = torch.zeros(16, 32)  # a PartCLIPSeg-only tensor
    conversion = convert_state_dict(official, CONFIGS["tiny"])
    assert conversion.unconsumed == [PREFIX + "decoder.part_obj_mlp.0.weight"]
    assert not conversion.missing
    assert len(conversion.dropped) == 5  # two dead adapters' weights, tunable_linear, two index buffers
    assert len(conversion.state_dict) + len(conversion.dropped) + 1 == len(official)
    del official[PREFIX + "decoder.film_add.bias"]
    conversion = convert_state_dict(official, CONFIGS["tiny"])
    assert conversion.missing == ["decoder.film_add.bias"]
    assert "1 missing (clipseg_model.decoder.film_add.bias)" in conversion.summary()
    with pytest.raises(CheckpointError, match="lacks 1 tensors.*'clipseg_model.decoder.film_add.bias'"):
        write_checkpoint(conversion, "/nonexistent/never-written", tiny_tokenizer_folder())
    del official[PREFIX + "non_object_embedding"]
    with pytest.raises(CheckpointError, match="lacks 'clipseg_model.non_object_embedding'"):
        convert_state_dict(official, CONFIGS["tiny"])


def test_other_files_are_refused(tmp_path):
    partclipseg = save_official(tmp_path / "partclipseg.pth", partclipseg_state_dict())
    with pytest.raises(CheckpointError, match="PartCLIPSeg checkpoint.*convert partclipseg"):
        read_official_checkpoint(partclipseg)
    with pytest.raises(CheckpointError, match="no key starts with"):
        read_official_checkpoint(save_official(tmp_path / "other.pth", {"encoder.weight": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match="does not exist"):
        read_official_checkpoint(tmp_path / "missing.pth")
    result = CliRunner().invoke(cli(), ["convert", "clipseg", str(partclipseg), str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Traceback" not in result.output
    result = CliRunner().invoke(
        cli(), ["convert", "clipseg", str(partclipseg), str(tmp_path / "o"), "--config", "x"]
    )
    assert result.exit_code == 2 and "Unknown clipseg config" in result.output
