"""class_chunk="auto": the chunk follows free memory, and the logits never depend on it.

That no method's logits depend on the chunk is checked for every registered method by
``tests/models/test_contract.py``; here: the chunk rule itself and PartCATSeg's two stages."""

from __future__ import annotations

import pytest
import torch

import ovparts
from ovparts.errors import ConfigError
from ovparts.methods.catseg.model import CatSegAggregator
from ovparts.models import chunking
from ovparts.models.chunking import AUTO_FRACTION, resolve_class_chunk


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


def _tiny_partcatseg(class_chunk, state=None):
    torch.manual_seed(0)
    model = ovparts.load_model("partcatseg", config={"base": "tiny", "class_chunk": class_chunk}).double()
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


# 2 generalized parts + 3 objects + background = 6 stage-A classes; 6 object-specific parts + background = 7
PARTCATSEG_VOCAB = "dog: head, leg; cat: head, leg; cow: head, leg"


@pytest.mark.slow
def test_partcatseg_auto_fixed_and_unchunked_give_the_same_logits(monkeypatch):
    vocab = ovparts.Vocabulary.parse(PARTCATSEG_VOCAB)
    whole = _tiny_partcatseg(0)
    state = whole.state_dict()
    monkeypatch.setattr(chunking, "available_memory", lambda device: 0)  # "auto": one class at a time
    pixels = torch.randn(2, 3, *whole.preprocess.size, dtype=torch.double)
    chunked = [_tiny_partcatseg(chunk, state) for chunk in (2, "auto")]
    with torch.inference_mode():
        expected = whole(pixels, vocab)
        for model in chunked:
            got = model(pixels, vocab)
            for key in ("part_object_logits", "specific_logits"):
                torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_partcatseg_auto_chunk_follows_free_memory(monkeypatch):
    vocab = ovparts.Vocabulary.parse(PARTCATSEG_VOCAB)
    model = _tiny_partcatseg("auto")
    pixels = torch.randn(1, 3, *model.preprocess.size, dtype=torch.double)
    with torch.inference_mode():
        dense, _ = model.image_features(pixels)
    per_class = model.per_class_bytes(dense)
    # the same estimate as CAT-Seg's aggregator (the tiny head's projection is smaller)
    assert per_class == CatSegAggregator.per_class_bytes(model.head, dense) > 0

    chunks = []
    head_forward = model.head.forward

    def spy(*args, class_chunk=None, **kwargs):
        chunks.append(class_chunk)
        return head_forward(*args, class_chunk=class_chunk, **kwargs)

    monkeypatch.setattr(model.head, "forward", spy)
    for free, expected in ((3 * per_class / AUTO_FRACTION, 3), (10**15, 7), (0, 1)):
        monkeypatch.setattr(chunking, "available_memory", lambda device, free=free: int(free))
        with torch.inference_mode():
            model(pixels, vocab)
        assert chunks[-1] == expected  # room for 3 classes; capped by the 7 object-specific rows; >= 1


@pytest.mark.parametrize("bad", ["half", 2.5, True])
def test_partcatseg_config_rejects_a_bad_class_chunk(bad):
    with pytest.raises(ConfigError, match="class_chunk"):
        ovparts.load_model("partcatseg", config={"base": "tiny", "class_chunk": bad})
