import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovparts.cli import main

VOCAB = "cat: head, ear, eye, nose, leg, tail"


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_segment_writes_three_files(run, chelsea_path, tiny_clipseg_dir, tmp_path):
    out = tmp_path / "out"
    result = run("segment", chelsea_path, "--vocab", VOCAB, "--weights", tiny_clipseg_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "chelsea.json",
        "chelsea.overlay.png",
        "chelsea.parts.png",
    ]
    labels = np.array(Image.open(out / "chelsea.parts.png"))
    photo = Image.open(chelsea_path)
    assert labels.shape == (photo.height, photo.width)
    assert set(np.unique(labels)) <= set(range(6)) | {255}
    report = json.loads((out / "chelsea.json").read_text())
    assert report["vocabulary"] == VOCAB and report["protocol"] == "pred_all"
    for row in report["parts"]:
        assert row["pixels"] == int((labels == row["id"]).sum())
        assert 0.0 <= row["mean_score"] <= 1.0
    overlay = Image.open(out / "chelsea.overlay.png")
    assert overlay.height == photo.height and overlay.width > photo.width  # legend panel on the right


def test_segment_several_images_and_oracle_mask(run, chelsea, tiny_clipseg_dir, tmp_path):
    first, second = tmp_path / "a" / "cat.png", tmp_path / "b" / "cat.png"
    for path in (first, second):
        path.parent.mkdir()
        Image.fromarray(chelsea).save(path)
    out = tmp_path / "out"
    result = run("segment", first, second, "--vocab", VOCAB, "--weights", tiny_clipseg_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"cat.json", "cat-2.json"}
    mask = np.full(chelsea.shape[:2], 255, np.uint8)
    mask[50:200, 100:300] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = run(
        "segment",
        first,
        "--vocab",
        VOCAB,
        "--weights",
        tiny_clipseg_dir,
        "--out",
        out,
        "--object-mask",
        tmp_path / "mask.png",
    )
    assert result.exit_code == 0, result.output
    labels = np.array(Image.open(out / "cat.parts.png"))
    assert (labels[mask == 255] == 255).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vocab", ""], "No parts found"),
        (["--vocab", "dog: head", "--model", "nope"], "Unknown model"),
        (["--vocab", "dog: head", "--weights", "missing/model"], "not in the Hugging Face cache"),
        (["--vocab", "dog: head", "--weights", "./no/such/folder"], "No checkpoint folder"),
        ([], "exactly one of --vocab"),
    ],
)
def test_segment_errors_are_one_sentence(run, chelsea_path, tmp_path, args, message):
    out = tmp_path / "out"
    config = [] if "--weights" in args else ["--config", "tiny"]
    result = run("segment", chelsea_path, *config, "--out", out, *args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_bad_image_among_good_ones(run, chelsea_path, tiny_clipseg_dir, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    result = run("segment", chelsea_path, bad, "--vocab", VOCAB, "--weights", tiny_clipseg_dir, "--out", out)
    assert result.exit_code == 2
    assert "bad.jpg" in result.output and "Traceback" not in result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["chelsea.json", "chelsea.overlay.png", "chelsea.parts.png"]  # nothing for the bad one


def test_help_and_models(run):
    assert "Oracle-Obj" in run("segment", "--help").output
    listing = run("models").output
    assert "clipseg" in listing and "tiny" in listing


@pytest.mark.slow
def test_segment_compile_matches_eager(run, chelsea_path, tiny_clipseg_dir, tmp_path):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    args = ("segment", chelsea_path, "--vocab", VOCAB, "--weights", tiny_clipseg_dir)
    assert run(*args, "--out", tmp_path / "eager").exit_code == 0
    before = counters["stats"]["unique_graphs"]
    result = run(*args, "--out", tmp_path / "compiled", "--compile")
    assert result.exit_code == 0, result.output
    assert counters["stats"]["unique_graphs"] > before  # the run went through compiled graphs
    eager = np.array(Image.open(tmp_path / "eager" / "chelsea.parts.png"))
    compiled = np.array(Image.open(tmp_path / "compiled" / "chelsea.parts.png"))
    assert eager.shape == compiled.shape
    assert (eager == compiled).mean() > 0.999  # float rounding may flip a near-tie pixel, nothing more
    help_text = " ".join(run("segment", "--help").output.split())
    assert "--compile" in help_text and "first image pays the compile time" in help_text
    torch._dynamo.reset()
