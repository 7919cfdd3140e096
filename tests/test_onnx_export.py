"""ONNX export of CLIPSeg: onnxruntime matches PyTorch within 1e-4, for any vocabulary size and batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovparts

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
from ovparts.runtime.onnx_export import OnnxClipSeg, export_clipseg_onnx  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = ovparts.load_model("clipseg", config="tiny")
    return model, export_clipseg_onnx(model, tmp_path_factory.mktemp("onnx") / "clipseg.onnx", classes=3)


@pytest.mark.parametrize(("batch", "vocab"), [(1, "dog: head, leg, tail; cat: ear, tail"), (3, "car: wheel")])
def test_onnxruntime_matches_pytorch(exported, batch, vocab):
    model, path = exported
    runtime = OnnxClipSeg(model, path)
    vocabulary = ovparts.Vocabulary.parse(vocab)
    pixels = torch.randn(batch, 3, *model.preprocess.size)
    with torch.inference_mode():
        expected = model.predict(pixels, vocabulary).parts
    got = runtime.predict(pixels, vocabulary).parts
    assert got.shape == expected.shape == (batch, len(vocabulary), *model.preprocess.size)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_segmenter_runs_on_onnxruntime(exported, chelsea):
    model, path = exported
    vocab = "cat: head, ear, eye, leg"
    expected = ovparts.Segmenter(model, keep_scores=True)(chelsea, vocab)
    got = ovparts.Segmenter(OnnxClipSeg(model, path), keep_scores=True)(chelsea, vocab)
    assert np.abs(got.part_scores - expected.part_scores).max() <= 1e-4


def test_only_clipseg_exports(tmp_path):
    from ovparts.errors import ConfigError

    with pytest.raises(ConfigError, match="clipseg model only"):
        export_clipseg_onnx(ovparts.load_model("partclipseg", config="tiny"), tmp_path / "x.onnx")
