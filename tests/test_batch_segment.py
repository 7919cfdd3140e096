"""``ovparts segment DIR_OR_GLOB``: folders and globs, and two processes writing the files one process writes."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovparts
from ovparts.batch import expand_inputs
from ovparts.cli import main
from ovparts.errors import OvpartsError

from .processes import run_ranks

SRC = Path(__file__).resolve().parents[1] / "src"
VOCAB = "dog: head, torso, leg, tail; cat: head, ear"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for index in range(5):
        pixels = rng.integers(0, 255, size=(40 + 4 * index, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights") / "tiny-clipseg"
    ovparts.load_model("clipseg", config="tiny").save_pretrained(folder)
    return folder


def test_folders_and_globs_expand_to_images_but_never_to_our_outputs(photos, tmp_path):
    (tmp_path / "a.parts.png").write_bytes(b"")
    (tmp_path / "a.overlay.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "b.jpg")]
    assert len(expand_inputs([str(photos)])) == 5
    assert expand_inputs([str(photos / "photo[12].png")]) == [
        str(photos / "photo1.png"),
        str(photos / "photo2.png"),
    ]
    with pytest.raises(OvpartsError, match="No file matches"):
        expand_inputs([str(photos / "*.tiff")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(OvpartsError, match="holds no image"):
        expand_inputs([str(tmp_path / "empty")])


def _files(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.slow
def test_two_processes_write_the_same_files_as_one(photos, weights, tmp_path):
    args = ["segment", str(photos), "--weights", str(weights), "--vocab", VOCAB]
    one = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "ovparts.cli", *args, "--out", str(tmp_path / "two"), "--devices", "2"]
    two = run_ranks([*command, "--workers", "1"], env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    files = _files(tmp_path / "one")
    assert len(files) == 15 and files == _files(tmp_path / "two")
    assert "5/5" in two.stderr and "3/3" not in two.stderr  # one bar for the whole job, not one per rank

    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two").iterdir()}
    again = run_ranks([*command, "--workers", "0", "--skip-existing"], env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two").iterdir()} == stamps  # all skipped
