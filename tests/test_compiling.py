"""torch.compile of a loaded model: same logits as eager, same checkpoint keys, any vocabulary size.

Inductor generates and builds C++ kernels, which takes tens of seconds per tiny model on a small CPU, so
the default method (CLIPSeg) is compiled with inductor (the default backend) and every other registered
method with "aot_eager": the same dynamo capture and AOT tracing, the graphs then run by the eager kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

import ovparts
from ovparts.errors import ConfigError
from ovparts.methods import DEFAULT_MODEL
from ovparts.models.base import PartSegModel
from ovparts.runtime.compiling import check_compile_available, compile_model, is_compiled
from ovparts.text import disk_cache
from ovparts.vocabulary import Vocabulary

FIRST = Vocabulary.parse("dog: head, tail, leg; cat: ear")  # 4 parts
SECOND = Vocabulary.parse("dog: head, tail; cat: ear, nose, paw; bird: wing, beak")  # 7 parts
THIRD = Vocabulary.parse("car: wheel, door, window, roof; dog: head, tail, leg, paw, ear")  # 9 parts
BACKENDS = {name: "inductor" if name == DEFAULT_MODEL else "aot_eager" for name in ovparts.available_models()}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch: no graphs (or recompile budget) carried over from another test."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def tiny(name: str) -> PartSegModel:
    torch.manual_seed(0)
    return ovparts.load_model(name, config="tiny")


def outputs(model: PartSegModel, pixels: torch.Tensor, vocab: Vocabulary) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        logits = model.predict(pixels, vocab)
    named = {
        "parts": logits.parts,
        "background": logits.background,
        "objects": logits.objects,
        "object_background": logits.object_background,
    }
    return {key: value.clone() for key, value in named.items() if value is not None}


def modules_run_by(model: PartSegModel, work) -> list[torch.nn.Module]:
    """The submodules whose forward ``work`` calls, the vocabulary caches (memory and disk) out of the way."""
    called: dict[int, torch.nn.Module] = {}

    def record(module: torch.nn.Module, args: tuple) -> None:  # returns None: the arguments stay as given
        called[id(module)] = module

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()]
    try:
        model.clear_vocabulary_cache()
        with torch.inference_mode(), disk_cache.disabled():
            work()
    finally:
        for hook in hooks:
            hook.remove()
    return list(called.values())


def unique_graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("name", list(BACKENDS))
@pytest.mark.slow
def test_compiled_logits_match_eager_for_two_vocabulary_sizes(name):
    model = tiny(name)
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, *model.preprocess.size)
    eager = [outputs(model, pixels, vocab) for vocab in (FIRST, SECOND)]
    keys = list(model.state_dict())
    text_modules = modules_run_by(model, lambda: model.encode_vocabulary(FIRST))

    assert compile_model(model, backend=BACKENDS[name]) is model
    before = unique_graphs()
    compiled = [outputs(model, pixels, vocab) for vocab in (FIRST, SECOND)]

    assert unique_graphs() > before  # dynamo captured graphs: the model did not silently run eagerly
    for want, got in zip(eager, compiled, strict=True):
        assert want.keys() == got.keys()
        for key in want:
            assert got[key].shape == want[key].shape
            torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=0, msg=f"{name} {key}")
    assert list(model.state_dict()) == keys  # no "_orig_mod." prefixes: checkpoints stay loadable
    assert all(is_compiled(target) for target in model.compile_targets())
    assert text_modules and not any(is_compiled(m) for m in text_modules)  # text encoding stays eager


@pytest.mark.slow
def test_a_new_vocabulary_size_reuses_the_graphs():
    """After the second size, the class-chunk loops run outside the graphs, so a third size compiles nothing."""
    model = compile_model(tiny("clipseg"), backend="aot_eager")
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, *model.preprocess.size)
    for vocab in (FIRST, SECOND):
        outputs(model, pixels, vocab)
    before = unique_graphs()
    third = outputs(model, pixels, THIRD)
    assert unique_graphs() == before
    assert third["parts"].shape[1] == len(THIRD)


@pytest.mark.slow
def test_compiled_checkpoint_round_trip(tmp_path):
    model = compile_model(tiny("catseg"), backend="aot_eager")
    folder = model.save_pretrained(tmp_path / "ckpt")
    loaded = ovparts.load_model("catseg", weights=str(folder))
    assert not is_compiled(loaded)
    own, other = model.state_dict(), loaded.state_dict()
    assert list(own) == list(other)
    assert all(torch.equal(own[key], other[key]) for key in own)


@pytest.mark.slow
def test_segmenter_compile_with_bf16_autocast(chelsea):
    model = tiny("clipseg")
    eager = ovparts.Segmenter(model, keep_scores=True, precision="bf16")(chelsea, FIRST)
    compiled_model = tiny("clipseg")
    segmenter = ovparts.Segmenter(compiled_model, keep_scores=True, precision="bf16", compile=True)
    assert is_compiled(compiled_model.decoder) and is_compiled(compiled_model.backbone)
    before = unique_graphs()
    result = segmenter(chelsea, FIRST)
    assert unique_graphs() > before
    assert result.part_map.shape == eager.part_map.shape
    # bf16 rounding differs where inductor fuses ops; probabilities stay close, labels nearly all agree
    assert np.abs(result.part_scores - eager.part_scores).max() < 2e-2
    assert (result.part_map == eager.part_map).mean() > 0.99


def test_missing_cpp_compiler_is_one_sentence():
    from torch._inductor import config

    original = config.cpp.cxx
    # config.patch, not monkeypatch: undoing a monkeypatch deletes the option from inductor's config
    with config.patch({"cpp.cxx": ("ovparts-no-such-compiler++",)}):
        with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler") as caught:
            compile_model(tiny("clipseg"))
        check_compile_available("aot_eager", "cpu")  # backends without code generation need no compiler
    assert str(caught.value).count(". ") == 0 and "\n" not in str(caught.value)
    assert config.cpp.cxx == original  # later tests compile with the real compiler again


def test_bad_backend_and_mode_are_refused():
    model = tiny("clipseg")
    with pytest.raises(ConfigError, match="Unknown torch.compile backend 'nope'"):
        compile_model(model, backend="nope")
    with pytest.raises(ConfigError, match="Unknown torch.compile mode 'fastest'"):
        compile_model(model, mode="fastest")
    assert not is_compiled(model)
