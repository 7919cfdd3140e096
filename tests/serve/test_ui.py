"""The page's handler without a browser: protocols, benchmark vocabularies, downloads and error toasts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the page needs the demo extra")

from ovparts.serve import ServedModel  # noqa: E402
from ovparts.serve.service import SegmentService  # noqa: E402
from ovparts.serve.ui import ORACLE_OBJ, PRED_ALL, TYPED, Page  # noqa: E402


@pytest.fixture(scope="module")
def page(tiny_clipseg, tmp_path_factory):
    service = SegmentService([ServedModel("clipseg", tiny_clipseg)])
    yield Page(service, tmp_path_factory.mktemp("page"))
    service.gate.shutdown()


def test_pred_all_fills_every_output(page, chelsea, chelsea_path):
    annotated, table, files, status = page.run(
        str(chelsea_path), "cat: head, tail", TYPED, PRED_ALL, "", 0.0, "clipseg"
    )
    base, annotations = annotated.value["image"], annotated.value["annotations"]
    assert base is not None and annotations
    names = [row[0] for row in table]
    assert names and set(names) <= {"cat's head", "cat's tail"}
    label_path, json_path = files
    label = np.array(Image.open(label_path))
    assert label.shape == chelsea.shape[:2]
    report = json.loads(Path(json_path).read_text(encoding="utf-8"))
    assert [p["name"] for p in report["parts"]] == names
    assert sum(row[1] for row in table) == int((label != 255).sum())
    assert "Pred-All" in status


def test_oracle_obj_keeps_to_the_named_object(page, chelsea, chelsea_path):
    vocab = "cat: head, tail; dog: head, leg"
    _, table, _, status = page.run(str(chelsea_path), vocab, TYPED, ORACLE_OBJ, "dog", 0.0, "clipseg")
    assert table and all(row[0].startswith("dog's") for row in table)
    assert "Oracle-Obj" in status


def test_benchmark_vocabulary_overrides_the_text(page, chelsea, chelsea_path):
    _, table, _, _ = page.run(
        str(chelsea_path), "this text is ignored", "partimagenet", PRED_ALL, "", 0.0, "clipseg"
    )
    from ovparts import Vocabulary

    names = set(Vocabulary.from_benchmark("partimagenet").names)
    assert table and {row[0] for row in table} <= names


@pytest.mark.parametrize(
    ("image", "vocab", "protocol", "obj", "words"),
    [
        (None, "cat: head", PRED_ALL, "", "No image"),
        ("chelsea", "", PRED_ALL, "", "exactly one"),
        ("chelsea", "cat: head", ORACLE_OBJ, "", "needs an object"),
        ("chelsea", "cat: head", ORACLE_OBJ, "horse", "'horse'"),
    ],
)
def test_mistakes_become_one_sentence_toasts(page, chelsea_path, image, vocab, protocol, obj, words):
    picture = str(chelsea_path) if image == "chelsea" else None
    with pytest.raises(gr.Error) as raised:
        page.run(picture, vocab, TYPED, protocol, obj, 0.5, "clipseg")
    assert words in raised.value.message


def test_pixel_limit_applies_to_the_page(tiny_clipseg, tmp_path, chelsea_path):
    from ovparts.serve import Limits

    service = SegmentService([ServedModel("clipseg", tiny_clipseg)], Limits(max_pixels=1000))
    try:
        with pytest.raises(gr.Error) as raised:
            Page(service, tmp_path).run(str(chelsea_path), "cat: head", TYPED, PRED_ALL, "", 0.5, "clipseg")
        assert "limit of 1000 pixels" in raised.value.message
    finally:
        service.gate.shutdown()
