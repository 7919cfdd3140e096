"""``ovparts evaluate`` and ``ovparts data check | info`` through click, on synthetic layouts."""

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

import ovparts
from ovparts.cli import evaluate as cli_eval
from ovparts.cli import main
from ovparts.data import load_dataset, write_synthetic
from ovparts.data.io import read_rgb


@pytest.fixture(scope="module")
def pascal_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_synthetic("pascal_part_116", root)
    return root


@pytest.fixture
def perfect_model(monkeypatch, pascal_root):
    """Replace model loading with a segmenter that answers the ground truth (no weights in tests)."""
    lookup = {
        hashlib.md5(read_rgb(s.image_path).tobytes()).hexdigest(): s
        for s in load_dataset("pascal", pascal_root)
    }
    seen = {}

    def segment(image, vocab, object_mask=None):
        sample = lookup[hashlib.md5(np.ascontiguousarray(image).tobytes()).hexdigest()]
        part = sample.part_map.copy()
        if object_mask is not None:
            part[object_mask < 0] = -1
        return SimpleNamespace(part_map=part, object_map=sample.object_map)

    def build(model, weights, config, device):
        seen.update(model=model, weights=weights, config=config, device=device)
        return segment

    monkeypatch.setattr(cli_eval, "build_segmenter", build)
    return seen


def test_evaluate_prints_table_and_writes_report(pascal_root, perfect_model, tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--model", "clipseg", "--config", "tiny", "--dataset", "pascal_part_116", "--root", str(pascal_root),
            "--protocol", "pred_all", "--average", "partcatseg", "--out", str(out), "--per-class", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output and "100.00" in result.output and "aeroplane's body" in result.output
    data = json.loads(out.read_text())
    assert data["config"]["model"] == "clipseg" and data["config"]["model_config"] == "tiny"
    assert data["metrics"]["mIoU"] == pytest.approx(100)
    assert perfect_model["config"] == "tiny"


def test_evaluate_bad_root_exits_2_with_one_sentence(perfect_model, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--model",
            "clipseg",
            "--dataset",
            "pascal_part_116",
            "--root",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert "Error:" in result.output and "Traceback" not in result.output


def test_evaluate_strict_fails_on_a_broken_file(perfect_model, tmp_path):
    root = write_synthetic("pascal_part_116", tmp_path)
    (root / "annotations_detectron2_obj" / "val" / "2009_000000.png").write_bytes(b"garbage")
    args = ["--model", "clipseg", "--dataset", "pascal", "--root", str(tmp_path), "--no-progress"]
    relaxed = CliRunner().invoke(main, ["evaluate", *args])
    assert relaxed.exit_code == 0 and "Skipped 1 bad file" in relaxed.output
    strict = CliRunner().invoke(main, ["evaluate", *args, "--strict"])
    assert strict.exit_code == 2 and "2009_000000.png" in strict.output


def test_data_info_and_check(pascal_root, tmp_path):
    runner = CliRunner()
    info = runner.invoke(main, ["data", "info", "ade20k_part_234"])
    assert (
        info.exit_code == 0
        and "drive.google.com" in info.output
        and "ade20k_instance_val.json" in info.output
    )
    ok = runner.invoke(
        main,
        ["data", "check", str(pascal_root), "--dataset", "pascal_part_116", "--split", "all", "--deep"],
    )
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = runner.invoke(main, ["data", "check", str(tmp_path), "--dataset", "partimagenet"])
    assert bad.exit_code == 2 and "MISSING" in bad.output and "val.json" in bad.output
    unknown = runner.invoke(main, ["data", "info", "coco"])
    assert unknown.exit_code == 2 and "Unknown dataset" in unknown.output


def test_evaluate_end_to_end_with_tiny_clipseg(pascal_root, tmp_path):
    """The real path: load_model -> Segmenter -> Oracle-Obj on a synthetic Pascal-Part-116 layout."""
    out = tmp_path / "tiny.json"
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--model", "clipseg", "--config", "tiny", "--dataset", "pascal_part_116", "--root", str(pascal_root),
            "--limit", "2", "--out", str(out), "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["counts"]["images"] == 2 and data["counts"]["records"] >= 2
    assert 0 <= data["metrics"]["mIoU"] <= 100
    assert data["config"]["segmenter"] == "Segmenter"


def test_evaluate_accepts_a_model_module(pascal_root):
    import ovparts

    model = ovparts.load_model("clipseg", config="tiny")
    report = ovparts.evaluate(
        model, "pascal_part_116", root=pascal_root, protocol="pred_all", limit=1, progress=False
    )
    assert report.counts["images"] == 1 and report.protocol == "pred_all"


@pytest.mark.parametrize("protocol", ["oracle_obj", "pred_all"])
@pytest.mark.parametrize("model", ovparts.available_models())
@pytest.mark.slow
def test_evaluate_runs_every_model_end_to_end(tmp_path_factory, model, protocol):
    """No stand-in: each registered method's tiny config through the real evaluate command."""
    root = tmp_path_factory.getbasetemp() / "every-model-pascal"
    if not root.exists():
        write_synthetic("pascal_part_116", root, images_per_split=1, size=(32, 40), splits=("val",))
    args = [
        "evaluate",
        "--model",
        model,
        "--config",
        "tiny",
        "--dataset",
        "pascal_part_116",
        "--root",
        str(root),
    ]
    result = CliRunner().invoke(main, [*args, "--protocol", protocol, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"protocol={protocol}" in result.output and "mIoU" in result.output
