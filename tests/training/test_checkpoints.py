import pytest
import torch

from ovparts.errors import CheckpointError
from ovparts.training.checkpoints import AtomicCheckpointIO, resume_path


def test_atomic_save_and_weights_only_load(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, path)
    loaded = io.load_checkpoint(path)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


class Payload:
    """An arbitrary class: loading it would mean running a pickle's code."""


def test_objects_that_need_unpickling_are_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(CheckpointError, match="could not be read"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_resume_path(tmp_path):
    assert resume_path(None, tmp_path) is None
    assert resume_path("last", tmp_path) is None  # nothing saved yet: start fresh
    (tmp_path / "last.ckpt").write_bytes(b"x")
    assert resume_path("last", tmp_path) == str(tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        resume_path(str(tmp_path / "nope.ckpt"), tmp_path)
