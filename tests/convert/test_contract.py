"""The shared converter contract (ovparts.convert): registry lookup, one reader, one writer, one result type."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import ovparts
from ovparts.cli import main
from ovparts.convert import (
    Conversion,
    available_converters,
    convert_checkpoint,
    converter_for,
    read_official_checkpoint,
    write_checkpoint,
)
from ovparts.convert.conversion import settle
from ovparts.convert.rules import apply_rules, count_indices, map_state_dict
from ovparts.errors import CheckpointError, UnknownModelError
from ovparts.models import registry
from ovparts.testing import tiny_tokenizer_folder

from .official_catseg import official_catseg
from .test_partclipseg import official_state_dict as partclipseg_state_dict
from .test_partclipseg import save_official


def test_every_registered_converter_is_a_command_of_its_model():
    names = available_converters()
    assert set(names) == {"catseg", "clipseg", "partclipseg", "partcatseg"}
    for name in names:
        assert converter_for(name).method == name and registry.model_spec(name).converter is converter_for(
            name
        )
    listing = CliRunner().invoke(main, ["convert", "--help"])
    assert listing.exit_code == 0 and all(name in listing.output for name in names)
    with pytest.raises(ValueError, match="registers the converter of 'catseg'"):
        spec = registry.model_spec("clipseg")
        registry.register_model("toyseg", spec.cls, spec.configs, converter=converter_for("catseg"))
    assert "toyseg" not in registry.available_models()


def test_a_newly_registered_converter_gets_its_command(monkeypatch, tmp_path):
    """A method added to the registry with a converter is converted by `ovparts convert` with no other change."""
    spec = registry.model_spec("partclipseg")
    toy = dataclasses.replace(converter_for("partclipseg"), method="toyseg", help="Convert a toy checkpoint.")

    def convert(official, base_config=None):
        return dataclasses.replace(spec.converter.convert(official, base_config), method="toyseg")

    toy = dataclasses.replace(toy, convert=convert)
    monkeypatch.setitem(registry._REGISTRY, "toyseg", dataclasses.replace(spec, converter=toy))
    path = save_official(tmp_path / "toy.pth", partclipseg_state_dict())
    args = ["convert", "toyseg", str(path), str(tmp_path / "out"), "--config", "tiny"]
    result = CliRunner().invoke(main, [*args, "--tokenizer", str(tiny_tokenizer_folder())])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output and "--model toyseg" in result.output
    model = ovparts.load_model("partclipseg", weights=str(tmp_path / "out"))
    assert model.config.faithful


def test_convert_checkpoint_is_the_command_as_one_function(tmp_path):
    official = official_catseg("cvpr", seed=1)
    path = tmp_path / "official.pth"
    torch.save({"model": official, "iteration": 5}, path)
    conversion = convert_checkpoint("catseg", path, tmp_path / "api", tokenizer=tiny_tokenizer_folder())
    cli = CliRunner().invoke(
        main,
        ["convert", "catseg", str(path), str(tmp_path / "cli"), "--tokenizer", str(tiny_tokenizer_folder())],
    )
    assert cli.exit_code == 0, cli.output
    assert cli.output == f"{conversion.report()}\nSaved to {tmp_path / 'cli'}.\n"
    api, command = (
        load_file(tmp_path / "api" / "model.safetensors"),
        load_file(tmp_path / "cli" / "model.safetensors"),
    )
    assert api.keys() == command.keys() and all(torch.equal(api[k], command[k]) for k in api)
    assert (tmp_path / "api" / "config.json").read_text() == (tmp_path / "cli" / "config.json").read_text()
    assert conversion.config["text_config"]["eos_token_id"] == 513  # the tokenizer's ids went into the config
    # options: a named base config is looked up in the registry, an unknown one refused before any reading
    official = save_official(tmp_path / "partclipseg.pth", partclipseg_state_dict())
    named = convert_checkpoint(
        "partclipseg", official, tmp_path / "p", tiny_tokenizer_folder(), base_config="tiny"
    )
    assert (
        named.config["extract_layers"] == registry.model_spec("partclipseg").configs["tiny"]["extract_layers"]
    )
    with pytest.raises(CheckpointError, match="Unknown partclipseg config 'nope'; choose from default"):
        convert_checkpoint("partclipseg", tmp_path / "absent.pth", tmp_path / "q", base_config="nope")
    with pytest.raises(UnknownModelError, match="Unknown model 'unknown-method'"):
        convert_checkpoint("unknown-method", official, tmp_path / "r")


def test_one_reader_for_every_method(tmp_path):
    state = {"w": torch.ones(2), "step": 3}
    torch.save(state, tmp_path / "bare.pth")
    torch.save({"model": state, "optimizer": {"lr": 0.1}}, tmp_path / "detectron2.pth")
    for name in ("bare.pth", "detectron2.pth"):
        read = read_official_checkpoint(tmp_path / name)
        assert read.keys() == state.keys() and torch.equal(read["w"], state["w"])
    torch.save({"model": {"step": 3}}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="holds no 'model' dictionary of tensors"):
        read_official_checkpoint(tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="No checkpoint file at .*absent.pth.*does not exist"):
        read_official_checkpoint(tmp_path / "absent.pth")
    # a method's reader adds its own recognition of foreign files, naming the command to use instead
    with pytest.raises(CheckpointError, match="convert partclipseg"):
        converter_for("clipseg").read(save_official(tmp_path / "p.pth", partclipseg_state_dict()))


def test_the_writer_refuses_a_used_folder_for_every_method(tmp_path):
    conversion = converter_for("catseg").convert(official_catseg("old"))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="already exists and is not an empty folder"):
        write_checkpoint(conversion, tmp_path / "used", tiny_tokenizer_folder())
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    out = write_checkpoint(conversion, tmp_path / "empty", tiny_tokenizer_folder())
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    broken = dataclasses.replace(conversion, missing=["head.head.bias"], missing_official=["x.head.bias"])
    with pytest.raises(
        CheckpointError, match=r"official.pth lacks 1 weight\(s\) a CAT-Seg model needs \(e.g. x"
    ):
        write_checkpoint(broken, tmp_path / "never", source="official.pth")
    assert not (tmp_path / "never").exists()


def test_one_result_type_reports_in_its_converter_s_style():
    state = {"a": torch.zeros(1)}
    common = dict(unconsumed=["u1", "u2", "u3", "u4"], missing=["m"], missing_official=["official.m"])
    itemized = Conversion(
        "catseg", state, {}, "old", headline="CAT-Seg (old version)", notes=["a note"], **common
    )
    assert itemized.report().splitlines() == [
        "CAT-Seg (old version): 1 tensors converted.",
        "4 official key(s) not used: u1, u2, u3, u4",
        "1 key(s) the model needs are missing: official.m",
        "a note",
    ]
    assert itemized.leftover is itemized.unconsumed and itemized.warnings() == []
    counts = Conversion("clipseg", state, {}, dropped=["d"], style="counts", **common)
    assert (
        counts.summary()
        == counts.report()
        == ("1 tensors converted; 1 dropped on purpose; 4 unconsumed (u1, u2, u3); 1 missing (official.m).")
    )
    assert counts.warnings() == ["Warning: not converted: u1, u2, u3, u4"]


def test_the_rule_engine():
    value = torch.arange(6.0).reshape(3, 2)
    rules = (
        (r"t\.(?P<p>w)", r"ours.t.\g<p>", "transpose"),
        (r"f", "ours.f", "flatten"),
        (r"qkv\.(?P<p>weight)", r"attn.{qkv}.\g<p>", "split_qkv"),
        (r"mask", "", "check_swin_mask"),
    )
    assert torch.equal(apply_rules("t.w", value, rules, "p.")[0][1], value.t())
    assert apply_rules("t.w", value, rules, "p.")[0][0] == "p.ours.t.w"
    assert apply_rules("f", value, rules, "")[0][1].shape == (6,)
    split = apply_rules("qkv.weight", value, rules, "")
    assert [k for k, _ in split] == ["attn.q.weight", "attn.k.weight", "attn.v.weight"]
    assert torch.equal(torch.cat([t for _, t in split]), value)
    assert apply_rules("mask", value, rules, "") == [] and apply_rules("other", value, rules, "") is None
    with pytest.raises(CheckpointError, match="cannot be split into q, k, v"):
        apply_rules("qkv.weight", torch.zeros(4, 2), rules, "")
    origins: dict[str, str] = {}
    official = {"t.w": value.half(), "count": 3, "unknown": torch.zeros(1)}
    out, leftover = map_state_dict(official, lambda k, v: apply_rules(k, v, rules, ""), origins)
    assert out["ours.t.w"].dtype == torch.float32 and origins == {"ours.t.w": "t.w"}
    assert leftover == ["count", "unknown"]
    assert count_indices(["blocks.0.x", "blocks.11.y", "other.3"], r"blocks\.(\d+)\.") == 12


def test_settle_drops_unknown_tensors_and_names_wrong_shapes_as_the_file_does():
    state = {"a": torch.zeros(2), "extra.q": torch.zeros(1), "extra.k": torch.zeros(1)}
    origins = {"a": "official.a", "extra.q": "official.qkv", "extra.k": "official.qkv"}
    unused, missing = settle(state, {"a": (2,), "b": (3,)}, origins, "Toy")
    assert list(state) == ["a"] and unused == ["official.qkv"] and missing == ["b"]
    with pytest.raises(
        CheckpointError, match=r"'official.a' has shape \(2,\) .*needs \(4,\).*consistent Toy"
    ):
        settle(state, {"a": (4,)}, origins, "Toy")


def test_shape_only_builds_never_import_the_testing_module():
    code = (
        "import sys; from ovparts.convert.tokenizer import for_shape_check; "
        "for_shape_check({'text_config': {}}); assert 'ovparts.testing' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
