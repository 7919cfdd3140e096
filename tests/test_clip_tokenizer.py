"""The real CLIP tokenizer the tests build offline gives OpenAI's token ids on every benchmark prompt.

The oracle is OpenAI's own tokenizer code as the open_clip_torch wheel ships it (``open_clip/tokenizer.py``),
loaded from the installed file without running the open_clip package (which needs torchvision).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import ovparts
from ovparts.backbones.clip import ClipBackbone, build_clip, check_special_ids
from ovparts.errors import CheckpointError
from ovparts.methods.catseg.model import CATSEG_TEMPLATE
from ovparts.testing import TINY_CLIPSEG, tiny_tokenizer_folder
from ovparts.text.templates import TEMPLATE_SETS

BENCHMARKS = Path(ovparts.__file__).parent / "data" / "tables"
CONTEXT = 77


@pytest.fixture(scope="module")
def openai_tokenizer(openai_bpe_path):
    """open_clip's ``SimpleTokenizer`` (OpenAI's rules: ftfy + html clean, whitespace, lower case, BPE)."""
    spec = importlib.util.spec_from_file_location(
        "openai_simple_tokenizer", openai_bpe_path.parent / "tokenizer.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(str(openai_bpe_path), context_length=CONTEXT)


@pytest.fixture(scope="module")
def ours(clip_bpe_tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(clip_bpe_tokenizer_dir))


def benchmark_names() -> list[str]:
    """Every class name of the shipped benchmarks, possessive (``dog's head``) and plain (``dog head``)."""
    names: set[str] = set()
    for path in sorted(BENCHMARKS.glob("*.json")):
        table = json.loads(path.read_text(encoding="utf-8"))
        for entry in table["object_classes"] + table["part_classes"]:
            names.add(entry["name"])
        names.update(table.get("generalized_part_names", []))
    names |= {name.replace("'s", "") for name in names}
    return sorted(names)


def prompts() -> list[str]:
    """Every benchmark name in the templates that frame it differently (bare, ``"a photo of a {}."``, CAT-Seg's,
    a name followed by words), and every template ovparts uses around a sample of names.

    A template's own words tokenize the same whatever the name (the BPE works word by word), so this covers
    every (name, template) pair at a tenth of the cost of running OpenAI's pure-Python tokenizer on all of them.
    """
    names = benchmark_names()
    templates = sorted({t for group in TEMPLATE_SETS.values() for t in group} | {CATSEG_TEMPLATE})
    framing = ["{}", "a photo of a {}.", CATSEG_TEMPLATE, "a {} in a video game."]
    sample = names[:: max(len(names) // 25, 1)]
    return [t.format(n) for n in names for t in framing] + [t.format(n) for n in sample for t in templates]


def assert_same_ids(ours, openai_tokenizer, texts: list[str]) -> None:
    """transformers' ids (padded with EOS) equal OpenAI's (padded with 0) on every non-padding position."""
    tokens = ours(texts, padding="max_length", truncation=True, max_length=CONTEXT, return_tensors="pt")
    reference = openai_tokenizer(texts)
    assert tokens["input_ids"].shape == reference.shape == (len(texts), CONTEXT)
    lengths = tokens["attention_mask"].sum(dim=1)
    for row, (length, text) in enumerate(zip(lengths.tolist(), texts, strict=True)):
        assert torch.equal(tokens["input_ids"][row, :length], reference[row, :length]), text
        assert not reference[row, length:].any(), text  # OpenAI's prompt is no longer than ours


def test_vocabulary_is_openai_s(ours, openai_tokenizer):
    assert len(ours) == openai_tokenizer.vocab_size == 49408
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (49406, 49407, 49407)
    assert (openai_tokenizer.sot_token_id, openai_tokenizer.eot_token_id) == (49406, 49407)
    vocab = ours.get_vocab()
    for token, index in list(openai_tokenizer.encoder.items())[:-2]:
        assert vocab[token] == index, token


def test_benchmark_prompts_get_openai_ids(ours, openai_tokenizer):
    texts = prompts()
    assert len(texts) > 4 * len(benchmark_names()) > 4000
    assert_same_ids(ours, openai_tokenizer, texts)


def test_case_whitespace_possessive_and_context_truncation(ours, openai_tokenizer):
    long = "a photo of the " + " ".join(["left front wheel"] * 40)
    texts = [
        "A Photo Of A DOG'S HEAD.",
        "  a   photo of a\tcat's\n ear  ",
        "the bird's wing's tip",
        "IT'S a person's arm, isn't it?",
        "tier & side mirror, café",  # (transformers does not undo HTML escapes such as &amp; as OpenAI does)
        long,
        long.upper(),
    ]
    assert_same_ids(ours, openai_tokenizer, texts)
    tokens = ours([long], truncation=True, max_length=CONTEXT)["input_ids"][0]
    assert len(tokens) == CONTEXT and tokens[-1] == ours.eos_token_id  # truncated, still ended by EOS


def test_load_refuses_ids_the_tokenizer_does_not_emit(clip_bpe_tokenizer_dir):
    real = AutoTokenizer.from_pretrained(str(clip_bpe_tokenizer_dir))
    text = dict(TINY_CLIPSEG["text_config"], vocab_size=49408)
    vision = TINY_CLIPSEG["vision_config"]
    # the bug this guards against: the tiny tokenizer's ids in a config paired with OpenAI's tokenizer
    wrong = {**text, "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513}
    with pytest.raises(CheckpointError, match="end-of-text id 513|start-of-text id 512"):
        ClipBackbone(build_clip(wrong, vision, 32), real)
    with pytest.raises(CheckpointError, match="not in the vocabulary"):
        check_special_ids({"eos_token_id": 49407, "pad_token_id": 60000}, real)
    check_special_ids({"bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}, real)
    # pre-2023 hub configs (0 / 2 / 1): transformers pools at the highest id, OpenAI's end of text
    check_special_ids({"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}, real)
    tiny = AutoTokenizer.from_pretrained(str(tiny_tokenizer_folder()))
    tiny.add_tokens(["<extra>"])  # now the end-of-text id is not the highest
    with pytest.raises(CheckpointError, match="legacy end-of-text id 2"):
        check_special_ids({"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}, tiny)
