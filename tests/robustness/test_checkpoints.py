"""Checkpoints: a pickle that would run a command on load is refused, and nothing runs."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch
from click.testing import CliRunner

import ovparts
from ovparts.cli import main
from ovparts.errors import CheckpointError
from ovparts.hub import read_torch_file
from ovparts.models.registry import model_specs

CONVERTERS = [name for name, spec in model_specs().items() if spec.converter is not None]


class RunsACommand:
    """Unpickling this calls os.system: exactly what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_malicious(path, marker, legacy: bool = False) -> None:
    """A checkpoint as torch.save writes it (zip-based, or the legacy format) whose pickle runs a command."""
    payload = {"model": {"weight": RunsACommand(marker)}}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize("legacy", [False, True])
def test_the_payload_really_runs_when_unpickled_unsafely(tmp_path, legacy):
    marker = tmp_path / "ran"
    write_malicious(tmp_path / "evil.pth", marker, legacy)
    torch.load(tmp_path / "evil.pth", weights_only=False)  # the control: an unrestricted load executes it
    assert marker.exists()


def test_a_plain_pickle_runs_it_too(tmp_path):
    marker = tmp_path / "ran"
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump({"model": {"weight": RunsACommand(marker)}}, handle)
    with pytest.raises(CheckpointError, match="not a zip-based"):
        read_torch_file(tmp_path / "evil.pkl")
    assert not marker.exists()
    with open(tmp_path / "evil.pkl", "rb") as handle:
        pickle.load(handle)  # the control
    assert marker.exists()


def test_a_legacy_malicious_checkpoint_is_refused_unread(tmp_path):
    marker = tmp_path / "ran"
    write_malicious(tmp_path / "evil.pth", marker, legacy=True)
    with pytest.raises(CheckpointError, match="legacy pre-1.6"):
        read_torch_file(tmp_path / "evil.pth")
    assert not marker.exists()


def test_read_torch_file_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    write_malicious(tmp_path / "evil.pth", marker)
    with pytest.raises(CheckpointError, match="never pickled code"):
        read_torch_file(tmp_path / "evil.pth")
    assert not marker.exists()


def test_model_folder_with_malicious_bin_is_refused(tmp_path, tiny_clipseg_dir):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_clipseg_dir, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    write_malicious(folder / "pytorch_model.bin", marker)
    with pytest.raises(CheckpointError):
        ovparts.load_model("clipseg", weights=str(folder))
    assert not marker.exists()


@pytest.mark.parametrize("command", CONVERTERS)
def test_converter_refuses_malicious_checkpoint(tmp_path, command):
    marker = tmp_path / "ran"
    write_malicious(tmp_path / "evil.pth", marker)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", command, str(tmp_path / "evil.pth"), str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not marker.exists() and not out.exists()


def test_plain_tensor_checkpoints_still_load(tmp_path):
    torch.save({"model": {"weight": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(read_torch_file(tmp_path / "ok.pth")["model"]["weight"], torch.ones(2))


def test_corrupt_safetensors_is_one_sentence(tmp_path, tiny_clipseg_dir):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_clipseg_dir, folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        ovparts.load_model("clipseg", weights=str(folder))
