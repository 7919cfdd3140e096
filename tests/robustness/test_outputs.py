"""Every output case through the CLI: a result that loses nothing of the user's, or one sentence and exit
code 2 before any work; plus label PNG bit depth and a batch stopped by SIGTERM. The writing pieces behind
them (atomic writes, temp names, write errors) are tested in tests/test_output_files.py."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovparts
from ovparts.cli import main
from ovparts.errors import ConfigError
from ovparts.visualize import label_png

from .corpus_outputs import BAD_THRESHOLDS, GOOD_THRESHOLDS, OK, OUTPUT_CASES, photo, snapshot


def segment(*args):
    return CliRunner().invoke(main, ["segment", *map(str, args)], catch_exceptions=False)


def one_sentence(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text and lines[0].rstrip().endswith(".")


def prepared_segment(*args):
    result = segment(*args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=lambda c: c.name)
def test_output_cases_through_cli(case, tmp_path):
    args = case.prepare(tmp_path, prepared_segment)
    before = snapshot(tmp_path)
    result = segment(*args)
    if case.expect == OK:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2, result.output
        assert one_sentence(result.output) and result.output.startswith("Error: "), result.output
        for word in case.words:
            assert word in result.output, result.output
        # refused before any work: no output of this run exists
        made = set(snapshot(tmp_path)) - set(before)
        assert not made, made
    case.check(tmp_path, before)
    leftovers = [p for p in tmp_path.rglob(".ovparts-tmp-*") if p.is_file() and str(os.getpid()) in p.name]
    assert not [p for p in leftovers if "zzzz9999" not in p.name], leftovers


def test_output_corpus_is_large_enough():
    assert len(OUTPUT_CASES) + len(BAD_THRESHOLDS) >= 25


@pytest.mark.parametrize("value", BAD_THRESHOLDS, ids=repr)
def test_bad_thresholds_refused_by_the_library(value):
    model = ovparts.load_model("clipseg", config="tiny")
    with pytest.raises(ConfigError) as info:
        ovparts.Segmenter(model, background_threshold=value)
    assert one_sentence(str(info.value)) and "[0, 1]" in str(info.value)


@pytest.mark.parametrize("value", GOOD_THRESHOLDS)
def test_edge_thresholds_accepted(value):
    model = ovparts.load_model("clipseg", config="tiny")
    assert ovparts.Segmenter(model, background_threshold=value).background_threshold == value


def test_evaluate_refuses_an_unwritable_report_before_loading_data(tmp_path):
    (tmp_path / "report.json").mkdir()
    result = CliRunner().invoke(
        main,
        ["evaluate", "--model", "clipseg", "--dataset", "pascal_part_116", "--root", str(tmp_path / "no-data"), "--config", "tiny",
         "--out", str(tmp_path / "report.json")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 2 and "folder, not a file" in result.output, result.output


def test_benchmark_refuses_an_unwritable_json_before_measuring(tmp_path):
    result = CliRunner().invoke(
        main, ["benchmark", "--json", "/proc/ovparts.json", "--in-process"], catch_exceptions=False
    )
    assert result.exit_code == 2 and one_sentence(result.output), result.output


# ------------------------------------------------------------------ label PNG bit depth follows the vocabulary
@pytest.mark.parametrize(
    ("parts", "mode", "no_part"), [(254, "L", 255), (255, "I;16", 65535), (300, "I;16", 65535)]
)
def test_label_png_depth_follows_vocabulary_size(parts, mode, no_part):
    part_map = np.array([[0, 1], [-1, 3]])  # only small ids occur
    image = label_png(part_map, parts)
    assert image.mode == mode
    assert np.array(image)[1, 0] == no_part


def test_segment_json_states_the_no_part_value(tmp_path):
    vocab = "cat: " + ", ".join(f"p{i}" for i in range(255))
    image = photo(tmp_path / "cat.png")
    result = segment(image, "--vocab", vocab, "--config", "tiny", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "cat.json").read_text())
    assert report["no_part"] == 65535
    assert Image.open(tmp_path / "out" / "cat.parts.png").mode == "I;16"


@pytest.mark.slow
def test_sigterm_mid_batch_leaves_no_temp_file(tmp_path):
    """A real ``ovparts segment`` batch, stopped by SIGTERM while it writes: exit 143, no temp file left,
    and every JSON present is a complete or pending record (never a half-written file)."""
    import subprocess
    import sys
    import time

    images = [photo(tmp_path / "in" / f"img{i}.png", (i, 90, 40), (64, 48)) for i in range(150)]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "ovparts.cli", "segment", *map(str, images), "--vocab", "cat: head"]
    process = subprocess.Popen(
        [*command, "--config", "tiny", "--out", str(out)], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (out.is_dir() and len(list(out.glob("*.json"))) >= 3) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    names = [p.name for p in out.iterdir()]
    assert not [n for n in names if n.startswith(".")], names
    for path in out.glob("*.json"):
        assert "ovparts_output" in json.loads(path.read_text())
