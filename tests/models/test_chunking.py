"""class_chunk="auto": the chunk follows free memory, and the logits never depend on it."""

from __future__ import annotations

import pytest
import torch

import ovparts
from ovparts.models import chunking
from ovparts.models.chunking import resolve_class_chunk

MODELS = ["clipseg", "catseg", "partclipseg"]


def test_resolve_fixed_all_and_auto(monkeypatch):
    assert resolve_class_chunk(8, 100, 10, "cpu") == 8
    assert resolve_class_chunk(0, 100, 10, "cpu") == resolve_class_chunk(None, 100, 10, "cpu") == 100
    monkeypatch.setattr(chunking, "available_memory", lambda device: 4000)
    assert resolve_class_chunk("auto", 100, 100, "cpu") == 10  # a quarter of 4000 bytes, 100 per class
    assert resolve_class_chunk("auto", 100, 10**9, "cpu") == 1  # never below one class
    assert resolve_class_chunk("auto", 5, 1, "cpu") == 5  # never above the vocabulary
    with pytest.raises(ValueError, match="auto"):
        resolve_class_chunk("half", 10, 1, "cpu")


def test_available_memory_is_positive():
    assert chunking.available_memory("cpu") > 0


@pytest.mark.parametrize("name", MODELS)
def test_auto_chunk_gives_the_same_logits(name, monkeypatch):
    vocab = ovparts.Vocabulary.parse("dog: head, leg, tail, ear; cat: ear, head, paw")
    torch.manual_seed(0)
    model = ovparts.load_model(name, config={"base": "tiny", "class_chunk": 0}).double()
    state = model.state_dict()
    torch.manual_seed(0)
    auto = ovparts.load_model(name, config={"base": "tiny", "class_chunk": "auto"}).double()
    auto.load_state_dict(state)
    asked = []
    # no free memory: "auto" falls to chunks of one class, the most different path from "all at once"
    monkeypatch.setattr(chunking, "available_memory", lambda device: asked.append(device) or 0)
    pixels = torch.randn(2, 3, *model.preprocess.size, dtype=torch.double)
    with torch.inference_mode():
        expected = model.predict(pixels, vocab).parts
        got = auto.predict(pixels, vocab).parts
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    assert asked  # the auto path was taken
