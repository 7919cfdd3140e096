"""Two-process DDP on CPU (gloo): after a few steps both ranks hold the same weights."""

from pathlib import Path

import pytest
import torch

from ..processes import run_ranks
from .conftest import PYTHON, child_env

pytestmark = pytest.mark.slow


WORKER = Path(__file__).with_name("worker.py")


def test_two_process_ddp_ranks_end_equal(tmp_path, synthetic_root):
    out = tmp_path / "ddp"
    command = [
        PYTHON,
        str(WORKER),
        "tiny",
        f"out_dir={out}",
        f"data.root={synthetic_root}",
        "data.batch_size=4",
        "trainer.max_steps=3",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.accelerator=cpu",
        "trainer.checkpoint_every=0",
        "trainer.progress_bar=false",
        "trainer.loggers=[]",
        "eval.every=0",
    ]
    done = run_ranks(command, child_env(), timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 3
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)
