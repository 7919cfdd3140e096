"""Predictions saved as they are made: resume after SIGKILL, re-score with no model, refuse mixed folders."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovparts
from ovparts.cli import main
from ovparts.data import InMemoryDataset, Region, load_dataset, write_synthetic
from ovparts.errors import ConfigError, OvpartsError
from ovparts.evaluation import RULES, evaluate_predictions

from .fakes import SlowShifted
from .test_evaluate import VOCAB, Scripted, tiny_sample

WORKER = Path(__file__).with_name("worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def _without(data, key):
    return {k: v for k, v in data.items() if k != key}


def _same(a, b, note=""):
    """Equal reports: every number, every count, the per-class table, the skip list; also the exact floats."""
    assert a.to_dict() == b.to_dict(), note
    assert np.array_equal(a.confusion, b.confusion), note
    assert json.dumps(a.metrics) == json.dumps(b.metrics) and json.dumps(a.official) == json.dumps(b.official)


@pytest.fixture(scope="module")
def pascal8(tmp_path_factory):
    root = tmp_path_factory.mktemp("pascal8")
    write_synthetic("pascal_part_116", root, images_per_split=8, splits=("val",))
    return root


def test_sigkilled_run_resumed_gives_the_same_report(pascal8, tmp_path):
    saved = tmp_path / "preds"
    out = tmp_path / "killed.json"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(WORKER), str(pascal8), "pascal_part_116", str(out)]
    child = subprocess.Popen(
        [*command, "--save", str(saved), "--delay", "0.5"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while len(list(saved.glob("*.png"))) < 3:
            assert child.poll() is None, child.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the worker saved nothing"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not out.exists()  # killed before its report
    done = len(list(saved.glob("*.png")))
    reader = load_dataset("pascal_part_116", pascal8)
    images = sum(1 for sample in reader if sample.regions)
    assert 3 <= done < images

    segmenter = SlowShifted(reader)  # the same segmenter class: the same run settings
    resumed = ovparts.evaluate(
        segmenter, reader, save_predictions=saved, resume=True, average="partclipseg", progress=False
    )
    assert len(segmenter.calls) == images - done  # saved images are read back, not predicted again
    whole = ovparts.evaluate(SlowShifted(reader), reader, average="partclipseg", progress=False)
    _same(resumed, whole)
    assert 0 < whole.metrics["mIoU"] < 100
    assert not [p for p in saved.iterdir() if p.name.startswith(".ovparts-tmp-")]  # no temp file counted

    again = SlowShifted(reader)  # a complete folder: nothing left to predict
    ovparts.evaluate(again, reader, save_predictions=saved, resume=True, progress=False)
    assert not again.calls


@pytest.mark.parametrize("protocol", ["oracle_obj", "pred_all", "pred_obj"])
def test_from_predictions_reproduces_the_model_run_under_every_rule(synthetic_root, protocol, tmp_path):
    name = "ade20k_part_234"
    reader = load_dataset(name, synthetic_root)
    saved = tmp_path / "preds"
    ovparts.evaluate(SlowShifted(reader), reader, protocol, save_predictions=saved, limit=2, progress=False)
    for rule in RULES:
        direct = ovparts.evaluate(SlowShifted(reader), reader, protocol, rule, limit=2, progress=False)
        rescored = evaluate_predictions(saved, rule, progress=False)
        assert rescored.config["from_predictions"] == str(saved)
        assert _without(rescored.to_dict(), "config") == _without(direct.to_dict(), "config"), rule
        assert _without(rescored.config, "from_predictions") == direct.config
        assert json.dumps(rescored.metrics) == json.dumps(direct.metrics)
        assert rescored.counts["images"] == 2


def test_overlapping_records_are_saved_and_read_back_one_map_each(tmp_path):
    sample = tiny_sample(tmp_path)
    sample.regions.append(Region(0, sample.object_map >= 0, "cat#2"))  # overlaps both objects
    wrong = sample.part_map.copy()
    wrong[0, :] = 1
    data = InMemoryDataset([sample], VOCAB)
    saved = tmp_path / "preds"
    model = Scripted(None, with_mask=wrong)
    direct = ovparts.evaluate(model, data, save_predictions=saved, progress=False)
    assert len(model.masks) == 3  # one call per record
    assert sorted(p.name for p in saved.iterdir()) == ["img.png", "img__cat#2.png", "img__dog.png"]
    rescored = evaluate_predictions(saved, dataset=data, progress=False)
    assert _without(rescored.to_dict(), "config") == _without(direct.to_dict(), "config")
    stored = np.asarray(Image.open(saved / "img__dog.png")).astype(np.int64)
    assert np.array_equal(np.where(stored == 65535, -1, stored), wrong)


def test_resume_ignores_files_of_other_settings_and_rescoring_refuses_mixed_folders(pascal8, tmp_path):
    reader = load_dataset("pascal_part_116", pascal8)
    saved = tmp_path / "preds"
    ovparts.evaluate(SlowShifted(reader), reader, save_predictions=saved, progress=False)
    other = SlowShifted(reader)
    ovparts.evaluate(
        other,
        reader,
        save_predictions=saved,
        resume=True,
        limit=3,
        extra_config={"model": "b"},
        progress=False,
    )
    assert len(other.calls) == 3  # another model's files are never taken for this run's
    with pytest.raises(ConfigError, match="2 different runs"):
        evaluate_predictions(tmp_path / "preds", progress=False)
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate_predictions(tmp_path / "nowhere", progress=False)
    with pytest.raises(ConfigError, match="--save-predictions"):
        ovparts.evaluate(other, reader, resume=True, progress=False)


def test_rescoring_an_unfinished_run_says_so(pascal8, tmp_path):
    reader = load_dataset("pascal_part_116", pascal8)
    saved = tmp_path / "preds"
    ovparts.evaluate(SlowShifted(reader), reader, save_predictions=saved, progress=False)
    victim = sorted(saved.glob("*.png"))[1]
    victim.unlink()
    with pytest.raises(OvpartsError, match="continue it with --resume"):
        evaluate_predictions(saved, progress=False)


def test_command_line_resume_and_from_predictions(pascal8, tmp_path, monkeypatch):
    from ovparts.cli import evaluate as cli_eval

    reader = load_dataset("pascal_part_116", pascal8)
    monkeypatch.setattr(cli_eval, "build_segmenter", lambda *args: SlowShifted(reader))
    saved, report = tmp_path / "preds", tmp_path / "model.json"
    base = ["evaluate", "--dataset", "pascal_part_116", "--root", str(pascal8), "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(
        main,
        [*base, "--model", "clipseg", "--save-predictions", str(saved), "--resume", "--out", str(report)],
    )
    assert first.exit_code == 0, first.output
    rescored = tmp_path / "rescored.json"
    second = runner.invoke(
        main, ["evaluate", "--from-predictions", str(saved), "--out", str(rescored), "--no-progress"]
    )
    assert second.exit_code == 0, second.output
    a, b = json.loads(report.read_text()), json.loads(rescored.read_text())
    assert a["metrics"] == b["metrics"] and a["per_class"] == b["per_class"] and a["counts"] == b["counts"]
    assert b["config"]["model"] == "clipseg"
    for args, message in (
        (["evaluate", "--dataset", "pascal_part_116"], "Give --model, --dataset and --root"),
        (["evaluate", "--from-predictions", str(saved), "--model", "clipseg"], "without a model"),
    ):
        bad = runner.invoke(main, args)
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output
