"""A method from outside ovparts reaches every command through its registry entry, no ovparts file touched.

``ovparts_toy.py`` (beside this file) is installed the way ``pip install`` would: copied into a temporary
folder with a ``.dist-info`` that names it in the ``ovparts.methods`` entry point group, the folder put on
``sys.path`` (and on ``PYTHONPATH``, for the benchmark's worker processes). Then the commands run it: the
contract checks every built-in passes, ``train`` with the tiny recipe, ``segment`` and ``serve`` on the
trained checkpoint, ``evaluate`` on a synthetic benchmark, ``benchmark --size tiny`` against its peer.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ovparts
from ovparts.cli import main
from ovparts.models.registry import ENTRY_POINT_GROUP, model_spec, unregister_model
from tests.models import test_contract as contract

HERE = Path(__file__).resolve().parent
VOCAB = "cat: head, ear, tail; dog: leg"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder holding the installed toy package, on the import path of this process and its children."""
    site = tmp_path_factory.mktemp("site-packages")
    shutil.copy(HERE / "ovparts_toy.py", site / "ovparts_toy.py")
    dist = site / "ovparts_toy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ovparts-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntoy = ovparts_toy\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        patch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        yield site
    unregister_model("toy")  # later tests see the built-ins only
    sys.modules.pop("ovparts_toy", None)


def run(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_installed_method_is_registered_and_listed(site):
    assert "toy" in ovparts.available_models()
    assert model_spec("toy").cls.__module__ == "ovparts_toy"
    assert "toy" in run("models")


@pytest.mark.parametrize(
    "check",
    [
        contract.test_the_vocabulary_is_encoded_once_until_the_cache_is_cleared,
        contract.test_encode_image_is_the_per_image_work_of_predict,
        contract.test_predict_shapes_follow_the_batch_and_the_vocabulary,
        contract.test_segmenter_options_come_from_the_declared_defaults,
        contract.test_every_method_has_one_training_loss_with_a_total,
    ],
    ids=lambda check: check.__name__.removeprefix("test_"),
)
def test_the_toy_passes_the_contract_checks(site, check):
    check(("toy", contract.build("toy")))


def test_the_toy_round_trips_chunks_and_has_a_complete_entry(site, tmp_path, monkeypatch):
    assert contract.tiny_configs("toy") == ["tiny"]
    contract.test_save_load_round_trip_gives_the_same_model("toy", "tiny", tmp_path)
    contract.test_class_chunks_never_change_the_logits("toy", "tiny", monkeypatch)
    contract.test_registry_entry_is_complete("toy")


def test_a_broken_installed_method_is_left_out_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "ovparts_broken.py").write_text(
        "raise ImportError('needs a package that is not installed')\n"
    )
    dist = tmp_path / "ovparts_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ovparts-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = ovparts_broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="'broken'.*did not load.*needs a package"):
        names = ovparts.available_models()
    assert "clipseg" in names and "broken" not in names


def test_a_name_taken_by_another_method_is_refused(site):
    from ovparts_toy import CONFIGS, ToySeg

    from ovparts.models.registry import register_model

    with pytest.raises(ValueError, match="'clipseg' is already registered"):
        register_model("clipseg", ToySeg, CONFIGS)
    assert model_spec("clipseg").cls.__name__ == "ClipSeg"


@pytest.fixture(scope="module")
def trained(site, tmp_path_factory) -> Path:
    """``ovparts train tiny`` on the toy: a few steps on a synthetic Pascal-Part-116, then its export."""
    pytest.importorskip("lightning")
    out = tmp_path_factory.mktemp("toy-run")
    run(
        "train", "tiny", "model.name=toy", "model.config=tiny", "model.scope=model",
        f"data.root={out / 'synthetic'}", "data.batch_size=2", "trainer.max_steps=3",
        "trainer.checkpoint_every=0", "trainer.progress_bar=false", "eval.every=3", "eval.limit=2",
        "--out", out / "run",
    )  # fmt: skip
    export = out / "run" / "model"
    assert json.loads((export / "config.json").read_text())["ovparts_model"] == "toy"
    return export


def test_train_exports_a_checkpoint_that_loads_back_equal(trained):
    first = ovparts.load_model("toy", weights=str(trained))
    second = ovparts.load_model("toy", weights=str(trained))
    fresh = ovparts.load_model("toy", config="tiny")
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    assert any(not torch.equal(v, fresh.state_dict()[k]) for k, v in first.state_dict().items())


def test_segment_runs_the_trained_toy(trained, chelsea_path, tmp_path):
    run("segment", chelsea_path, "--vocab", VOCAB, "--model", "toy", "--weights", trained, "--out", tmp_path)
    labels = np.array(Image.open(tmp_path / "chelsea.parts.png"))
    photo = Image.open(chelsea_path)
    assert labels.shape == (photo.height, photo.width)
    report = json.loads((tmp_path / "chelsea.json").read_text())
    assert set(np.unique(labels)) <= {row["id"] for row in report["parts"]} | {255}


def test_serve_answers_with_the_trained_toy(trained, chelsea_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import ovparts.serve
    from ovparts.serve import create_app

    calls = []
    monkeypatch.setattr(ovparts.serve, "serve", lambda served, **kwargs: calls.append((served, kwargs)))
    run("serve", "--model", "toy", "--weights", trained, "--no-ui", "--text-cache-mb", 1)
    ((served, kwargs),) = calls
    assert [s.name for s in served] == ["toy"]
    assert served[0].model.text.cache.max_bytes == 2**20  # the server's text budget reached the toy's cache
    app = create_app(served, limits=kwargs["limits"], ui=False)
    with TestClient(app) as client:
        models = client.get("/v1/models").json()
        assert "toy" in [m["name"] for m in models["available"]]
        assert [m["name"] for m in models["loaded"]] == ["toy"]
        image = Path(chelsea_path).read_bytes()
        response = client.post(
            "/v1/segment",
            files={"image": ("chelsea.png", image, "image/png")},
            data={"vocabulary": VOCAB, "background_threshold": "0"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "toy"
    label = np.array(Image.open(io.BytesIO(base64.b64decode(body["label_map"]["data"]))))
    assert label.shape == (body["height"], body["width"])
    assert sum(p["pixels"] for p in body["parts"]) == label.size  # threshold 0: every pixel has a part


def test_evaluate_runs_the_toy_on_a_synthetic_benchmark(site, tmp_path):
    from ovparts.data import write_synthetic

    root = write_synthetic("pascal_part_116", tmp_path / "pascal", images_per_split=2, size=(32, 40))
    out = tmp_path / "report.json"
    run(
        "evaluate", "--model", "toy", "--config", "tiny", "--dataset", "pascal_part_116", "--root", root,
        "--limit", 2, "--out", out, "--no-progress",
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["counts"]["images"] == 2 and 0 <= report["metrics"]["mIoU"] <= 100


def test_benchmark_tiny_measures_the_toy_and_its_peer_in_worker_processes(site, tmp_path):
    out = tmp_path / "bench.json"
    run(
        "benchmark", "--model", "toy", "--size", "tiny", "--classes", 3, "--repeats", 1, "--batch", 2,
        "--json", out,
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["meta"]["isolated_processes"] is True
    ((row,),) = [[r for r in report["rows"] if r["model"] == "toy" and r["k"] == 3]]
    assert row["image_size"] == [32, 32] and row["latency_s"] > 0 and row["text_s"] > 0
    assert set(row["peers"]) == {"per-class"}
