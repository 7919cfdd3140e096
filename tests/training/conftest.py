"""Fixtures of the training tests: a synthetic Pascal-Part-116 on disk and the tiny recipe pointed at it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from ovparts.training.config import RECIPE_DIR, load_recipe  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    from ovparts.data import write_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic("pascal_part_116", root, images_per_split=8, size=(64, 80), seed=0)
    return root


@pytest.fixture
def tiny_recipe(tmp_path, synthetic_root):
    """The tiny recipe with quiet, fast defaults; extra ``key=value`` overrides win."""

    def make(*overrides: str):
        base = [
            f"out_dir={tmp_path / 'run'}",
            f"data.root={synthetic_root}",
            "trainer.progress_bar=false",
            "trainer.loggers=[csv]",
        ]
        return load_recipe(RECIPE_DIR / "tiny.yaml", [*base, *overrides])

    return make


def child_env() -> dict[str, str]:
    """Environment for training subprocesses: this checkout's sources first, one thread, offline."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    return env


PYTHON = sys.executable
