"""The model contract and the registry entries, checked for every registered method on its tiny configs.

These are the checks a method must pass, whatever it is: ``tests/methods/toy`` runs the same functions on a
method installed from outside ovparts. Each takes ``(name, model)``; the fixtures below build every
registered method's tiny configs (the named configs whose name starts with "tiny").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import ovparts
from ovparts.inference import Segmenter
from ovparts.models import chunking
from ovparts.models.base import PartLogits, SegmenterDefaults
from ovparts.models.registry import model_spec
from ovparts.text import disk_cache
from ovparts.vocabulary import Vocabulary

VOCAB = Vocabulary.parse("cat: head, tail; dog: leg")
CHUNK_VOCAB = Vocabulary.parse("dog: head, leg, tail, ear; cat: ear, head, paw")
SRC = Path(ovparts.__file__).resolve().parent


def tiny_configs(name: str) -> list[str]:
    """The named configs of ``name`` small enough for tests."""
    return [config for config in model_spec(name).configs if config.startswith("tiny")]


TINY = [(name, config) for name in ovparts.available_models() for config in tiny_configs(name)]


def text_encoder_calls(model: torch.nn.Module) -> int:
    """How many times ``model``'s text encoders actually ran (each counts in ``text_encoder_calls``)."""
    return sum(m.text_encoder_calls for m in model.modules() if hasattr(m, "text_encoder_calls"))


def build(name: str, config: str | dict = "tiny", seed: int = 0):
    torch.manual_seed(seed)
    return ovparts.load_model(name, config=config)


@pytest.fixture(scope="module", params=ovparts.available_models())
def tiny(request):
    return request.param, build(request.param)


@torch.no_grad()  # as at inference: a text encoder recording gradients is never cached
def test_the_vocabulary_is_encoded_once_until_the_cache_is_cleared(tiny):
    _, model = tiny
    model.clear_vocabulary_cache()
    first = model.encode_vocabulary(VOCAB)
    calls = text_encoder_calls(model)
    again = model.encode_vocabulary(VOCAB)
    assert text_encoder_calls(model) == calls  # served from the cache
    model.clear_vocabulary_cache()
    from_disk = model.encode_vocabulary(VOCAB)
    assert text_encoder_calls(model) == calls  # the on-disk cache answers a new process's question
    model.clear_vocabulary_cache()
    with disk_cache.disabled():
        fresh = model.encode_vocabulary(VOCAB)
    assert text_encoder_calls(model) > calls  # encoded again from scratch
    for a, b in zip(_tensors(first), _tensors(from_disk), strict=True):
        assert torch.equal(a, b)
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


def test_predict_shapes_follow_the_batch_and_the_vocabulary(tiny):
    _, model = tiny
    pixels = torch.randn(2, 3, *model.preprocess.size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model.predict(pixels, VOCAB)
    assert isinstance(logits, PartLogits) and logits.activation in ("sigmoid", "softmax")
    batch, classes, *grid = logits.parts.shape
    assert (batch, classes) == (2, len(VOCAB)) and len(grid) == 2 and min(grid) > 0
    expected = {"background": 1, "objects": len(VOCAB.objects), "object_background": 1}
    for key, channels in expected.items():
        value = getattr(logits, key)
        assert value is None or value.shape == (2, channels, *grid), key
    assert logits.object_background is None or logits.objects is not None
    for value in _tensors([logits.parts, *(getattr(logits, key) for key in expected)]):
        assert torch.isfinite(value).all()


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
    model.zero_grad(set_to_none=True)
    try:
        terms = model.train().training_loss(batch, VOCAB, 255)
        assert terms["total"].ndim == 0 and torch.isfinite(terms["total"]), name
        assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in terms.values()), name
        terms["total"].backward()
    finally:
        model.eval()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), name
    assert any(g.abs().sum() > 0 for g in grads), name  # the loss reaches the trained weights
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize(("name", "config"), TINY)
def test_save_load_round_trip_gives_the_same_model(name, config, tmp_path):
    model = build(name, config, seed=3)
    folder = model.save_pretrained(tmp_path / "checkpoint")
    again = ovparts.load_model(name, weights=str(folder))
    assert type(again) is type(model) and again.config == model.config
    assert again.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    pixels = torch.randn(1, 3, *model.preprocess.size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want, got = _outputs(model.predict(pixels, VOCAB)), _outputs(again.predict(pixels, VOCAB))
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=f"{name} {config} {key}")


@pytest.mark.parametrize(("name", "config"), TINY)
def test_class_chunks_never_change_the_logits(name, config, monkeypatch):
    """All classes at once against "auto" with no free memory: one class at a time, the most different path."""
    whole = build(name, {"base": config, "class_chunk": 0}).double()
    chunked = build(name, {"base": config, "class_chunk": "auto"}).double()
    chunked.load_state_dict(whole.state_dict())
    asked = []
    monkeypatch.setattr(chunking, "available_memory", lambda device: asked.append(device) or 0)
    pixels = torch.randn(2, 3, *whole.preprocess.size, dtype=torch.double)
    with torch.inference_mode():
        want, got = (
            _outputs(whole.predict(pixels, CHUNK_VOCAB)),
            _outputs(chunked.predict(pixels, CHUNK_VOCAB)),
        )
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-10, atol=1e-10, msg=f"{name} {config} {key}")
    assert asked  # the auto path was taken


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


def _outputs(logits: PartLogits) -> dict[str, torch.Tensor]:
    """Every tensor a prediction carries, extras included, by name."""
    named = {
        "parts": logits.parts,
        "background": logits.background,
        "objects": logits.objects,
        "object_background": logits.object_background,
        **{f"extras.{k}": v for k, v in logits.extras.items() if isinstance(v, torch.Tensor)},
    }
    return {key: value for key, value in named.items() if value is not None}


def _tensors(value):
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for item in value for t in _tensors(item)]
