"""Fault tolerance: a run killed with SIGKILL and resumed ends with the weights of an uninterrupted run."""

import os
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from .conftest import PYTHON, child_env

pytestmark = pytest.mark.slow


STEPS = 8


def _command(out, synthetic_root, *extra):
    return [
        PYTHON,
        "-m",
        "ovparts.cli",
        "train",
        "tiny",
        f"out_dir={out}",
        f"data.root={synthetic_root}",
        "data.batch_size=2",
        f"trainer.max_steps={STEPS}",
        "trainer.checkpoint_every=2",
        "trainer.deterministic=true",
        "trainer.progress_bar=false",
        "trainer.loggers=[csv]",
        "eval.every=0",
        *extra,
    ]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, synthetic_root):
    env = child_env()
    reference = tmp_path / "reference"
    done = subprocess.run(
        _command(reference, synthetic_root), env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    checkpoint = killed / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        _command(killed, synthetic_root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    saved = torch.load(checkpoint, weights_only=True, map_location="cpu")["global_step"]
    assert 0 < saved < STEPS
    assert not (killed / "model").exists()

    done = subprocess.run(
        _command(killed, synthetic_root, "--resume"), env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Trained {STEPS} steps" in done.stdout
    expected = load_file(reference / "model" / "model.safetensors")
    resumed = load_file(killed / "model" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6, msg=key)
