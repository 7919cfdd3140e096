"""The model contract and the registry entries, checked for every registered method on its tiny config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import ovparts
from ovparts.inference import Segmenter
from ovparts.models.base import SegmenterDefaults
from ovparts.models.registry import model_spec
from ovparts.vocabulary import Vocabulary

VOCAB = Vocabulary.parse("cat: head, tail; dog: leg")
SRC = Path(ovparts.__file__).resolve().parent


@pytest.fixture(scope="module", params=ovparts.available_models())
def tiny(request):
    torch.manual_seed(0)
    return request.param, ovparts.load_model(request.param, config="tiny")


@torch.no_grad()  # as at inference: a text encoder recording gradients is never cached
def test_the_vocabulary_is_encoded_once_until_the_cache_is_cleared(tiny):
    _, model = tiny
    model.clear_vocabulary_cache()
    first = model.encode_vocabulary(VOCAB)
    calls = model.backbone.text_encoder_calls
    again = model.encode_vocabulary(VOCAB)
    assert model.backbone.text_encoder_calls == calls  # served from the cache
    model.clear_vocabulary_cache()
    fresh = model.encode_vocabulary(VOCAB)
    assert model.backbone.text_encoder_calls > calls  # encoded again from scratch
    for a, b, c in zip(_tensors(first), _tensors(again), _tensors(fresh), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_encode_image_is_the_per_image_work_of_predict(tiny):
    _, model = tiny
    pixels = torch.randn(1, 3, *model.preprocess.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first, second = model.encode_image(pixels), model.encode_image(pixels)
        logits = model.predict(pixels, VOCAB)
    assert all(t.shape[0] == 1 for t in _tensors(first))
    assert all(torch.equal(a, b) for a, b in zip(_tensors(first), _tensors(second), strict=True))
    assert logits.parts.shape[:2] == (1, len(VOCAB))


def test_segmenter_options_come_from_the_declared_defaults(tiny):
    name, model = tiny
    defaults = model.segmenter_defaults
    assert isinstance(defaults, SegmenterDefaults)
    segmenter = Segmenter(model)
    assert segmenter.background_threshold == defaults.background_threshold
    assert (segmenter.sliding_window is not None) == defaults.sliding_window
    if defaults.sliding_window:
        window = segmenter.sliding_window
        assert (window.canvas, window.overlap) == (defaults.sliding_canvas, defaults.sliding_overlap)
    assert Segmenter(model, background_threshold=0.25).background_threshold == 0.25
    assert Segmenter(model, sliding_window=False).sliding_window is None


def test_every_method_has_one_training_loss_with_a_total(tiny):
    name, model = tiny
    side = model.preprocess.size
    generator = torch.Generator().manual_seed(0)
    batch = {
        "pixel_values": torch.randn(1, 3, *side, generator=generator),
        "part_labels": torch.randint(0, len(VOCAB), (1, *side), generator=generator),
        "object_labels": torch.randint(0, len(VOCAB.objects), (1, *side), generator=generator),
    }
    terms = model.train().training_loss(batch, VOCAB, 255)
    model.eval()
    assert terms["total"].ndim == 0 and torch.isfinite(terms["total"]), name


@pytest.mark.parametrize("name", ovparts.available_models())
def test_registry_entry_is_complete(name):
    spec = model_spec(name)
    assert spec.cls.name == name
    assert set(spec.sizes) == {"native", "tiny"} and set(spec.sizes.values()) <= set(spec.configs)
    assert set(spec.config_notes) == set(spec.configs)  # every named config says what it is
    assert spec.peers and all(peer.description for peer in spec.peers.values())
    assert isinstance(spec.published, tuple)


def test_production_code_never_imports_the_testing_module():
    importers = []
    for path in SRC.rglob("*.py"):
        if path.name == "testing.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "testing":
                importers.append(str(path.relative_to(SRC)))
    assert importers == []


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for item in value for t in _tensors(item)]
