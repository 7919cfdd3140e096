"""The on-disk text cache: a second process pays no encoding, and nothing stale is ever read."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

import ovparts
from ovparts.text import disk_cache

TEXTS = ["head of a cat", "tail of a dog", "wheel of a car"]
TEMPLATES = ("a photo of a {}.", "a drawing of a {}.")


def fresh_model(source=None):
    """A tiny CAT-Seg whose text tower equals ``source``'s (a new process's model: empty memory cache)."""
    torch.manual_seed(0)
    model = ovparts.load_model("catseg", config="tiny")
    if source is not None:
        model.load_state_dict(source.state_dict())
    return model


def encode(model, *args, **kwargs):
    """Inference-time encoding (no gradient), the calls the caches serve."""
    with torch.no_grad():
        return model.backbone.encode_text(*args, **kwargs)


def entries(home):
    return sorted((home / "text").glob("*.safetensors")) if (home / "text").is_dir() else []


def test_second_model_reads_the_disk_without_encoding(_ovparts_home):
    first = fresh_model()
    expected = encode(first, TEXTS, TEMPLATES, normalize=True)
    assert first.backbone.text_encoder_calls == 1
    assert len(entries(_ovparts_home)) == 1
    second = fresh_model(first)
    got = encode(second, TEXTS, TEMPLATES, normalize=True)
    assert second.backbone.text_encoder_calls == 0
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # and the in-memory cache above it now serves the next call
    encode(second, TEXTS, TEMPLATES, normalize=True)
    assert second.backbone.text_encoder_calls == 0


def test_changed_text_weights_never_read_a_stale_entry(_ovparts_home):
    first = fresh_model()
    stale = encode(first, TEXTS, TEMPLATES)
    changed = fresh_model(first)
    with torch.no_grad():
        changed.backbone.clip.text_projection.weight.mul_(1.5)
    got = encode(changed, TEXTS, TEMPLATES)
    assert changed.backbone.text_encoder_calls == 1
    assert not torch.allclose(got, stale)
    assert len(entries(_ovparts_home)) == 2


def test_weights_changed_in_place_after_a_cached_call_are_seen(_ovparts_home):
    model = fresh_model()
    before = encode(model, TEXTS)
    with torch.no_grad():
        model.backbone.clip.text_model.final_layer_norm.bias.add_(0.25)
    after = encode(model, TEXTS)
    assert model.backbone.text_encoder_calls == 2
    assert not torch.allclose(before, after)


def test_changed_templates_texts_normalisation_or_precision_are_other_entries(_ovparts_home):
    model = fresh_model()
    encode(model, TEXTS, TEMPLATES)
    reader = fresh_model(model)
    encode(reader, TEXTS, TEMPLATES[:1])
    encode(reader, TEXTS, tuple(reversed(TEMPLATES)))
    encode(reader, TEXTS[:2], TEMPLATES)
    encode(reader, TEXTS, TEMPLATES, normalize=True)
    assert reader.backbone.text_encoder_calls == 4
    assert len(entries(_ovparts_home)) == 5


def test_another_tokenizer_changes_the_fingerprint(clip_bpe_tokenizer_dir):
    from transformers import AutoTokenizer

    model = fresh_model()
    before = model.backbone.text_fingerprint()
    model.backbone.tokenizer = AutoTokenizer.from_pretrained(str(clip_bpe_tokenizer_dir))
    model.backbone._fingerprint = None
    assert model.backbone.text_fingerprint() != before


def test_turned_off_by_the_environment(_ovparts_home, monkeypatch):
    monkeypatch.setenv("OVPARTS_TEXT_CACHE", "0")
    first = fresh_model()
    encode(first, TEXTS)
    assert entries(_ovparts_home) == []
    monkeypatch.setenv("OVPARTS_TEXT_CACHE", "1")
    first.backbone._text_cache.clear()
    encode(first, TEXTS)
    assert len(entries(_ovparts_home)) == 1
    monkeypatch.setenv("OVPARTS_TEXT_CACHE", "0")
    second = fresh_model(first)
    encode(second, TEXTS)
    assert second.backbone.text_encoder_calls == 1  # present on disk, but not read


def test_gradient_recording_calls_bypass_the_disk(_ovparts_home):
    model = fresh_model()
    model.backbone.clip.text_model.requires_grad_(True)
    out = model.backbone.encode_text(TEXTS)
    assert out.requires_grad
    assert entries(_ovparts_home) == []


def test_the_bound_refuses_new_entries_with_one_warning(_ovparts_home, monkeypatch, caplog):
    monkeypatch.setattr(disk_cache, "_warned_full", False)
    monkeypatch.setenv("OVPARTS_TEXT_CACHE_DISK_MB", "0.001")  # about 1 kB: smaller than any entry
    model = fresh_model()
    with caplog.at_level(logging.WARNING, logger="ovparts.text.disk_cache"):
        encode(model, TEXTS)
        encode(model, TEXTS[:1])
    assert entries(_ovparts_home) == []
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1
    assert "OVPARTS_TEXT_CACHE_DISK_MB" in full[0].getMessage()


def test_a_bad_bound_is_one_sentence(monkeypatch):
    monkeypatch.setenv("OVPARTS_TEXT_CACHE_DISK_MB", "lots")
    with pytest.raises(ovparts.errors.ConfigError, match="OVPARTS_TEXT_CACHE_DISK_MB"):
        disk_cache.max_bytes()


def test_a_truncated_entry_is_a_miss_and_is_rewritten(_ovparts_home):
    first = fresh_model()
    expected = encode(first, TEXTS, TEMPLATES)
    (path,) = entries(_ovparts_home)
    path.write_bytes(path.read_bytes()[:100])
    second = fresh_model(first)
    got = encode(second, TEXTS, TEMPLATES)
    assert second.backbone.text_encoder_calls == 1
    torch.testing.assert_close(got, expected)
    assert (
        disk_cache.load(
            disk_cache.entry_key(second.backbone.text_fingerprint(), tuple(TEXTS), TEMPLATES, False, "fp32")
        )
        is not None
    )


def test_an_entry_stored_under_another_key_is_not_read(_ovparts_home):
    key = disk_cache.entry_key("f" * 64, ("a",), None, False, "fp32")
    other = disk_cache.entry_key("e" * 64, ("a",), None, False, "fp32")
    assert disk_cache.store(key, torch.ones(1, 4))
    disk_cache.entry_path(key).rename(disk_cache.entry_path(other))
    assert disk_cache.load(other) is None
    assert disk_cache.load(key) is None


WRITER = textwrap.dedent(
    """
    import sys, torch
    from ovparts.text import disk_cache
    key = disk_cache.entry_key("a" * 64, ("x",), None, False, "fp32")
    fill = float(sys.argv[1])
    for _ in range(40):
        assert disk_cache.store(key, torch.full((64, 2048), fill))
        value = disk_cache.load(key)
        assert value is not None and value.shape == (64, 2048)
        assert bool((value == value.flatten()[0]).all()), "a torn entry was read"
    """
)


def test_two_processes_writing_one_entry_never_tear_it(_ovparts_home):
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(fill)], stderr=subprocess.PIPE)
        for fill in (1.0, 2.0)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
    key = disk_cache.entry_key("a" * 64, ("x",), None, False, "fp32")
    value = disk_cache.load(key)
    assert value is not None and float(value.flatten()[0]) in (1.0, 2.0)
    assert [p.name for p in (_ovparts_home / "text").iterdir()] == [disk_cache.entry_path(key).name]


@pytest.mark.parametrize("flag", [[], ["--no-text-cache"]])
def test_segment_writes_the_cache_unless_told_not_to(flag, _ovparts_home, chelsea_path, tmp_path):
    from ovparts.cli import main

    try:
        result = CliRunner().invoke(
            main,
            [
                "segment",
                str(chelsea_path),
                "--model",
                "catseg",
                "--config",
                "tiny",
                "--vocab",
                "cat: head, ear",
                "--out",
                str(tmp_path / "out"),
                *flag,
            ],
        )
    finally:
        disk_cache.set_enabled(None)
    assert result.exit_code == 0, result.output
    assert (len(entries(_ovparts_home)) > 0) == (not flag)


def test_openai_fp16_embeddings_come_back_bit_for_bit(_ovparts_home):
    first = fresh_model()
    expected = encode(first, TEXTS, TEMPLATES, normalize=True, precision="openai_fp16")
    second = fresh_model(first)
    got = encode(second, TEXTS, TEMPLATES, normalize=True, precision="openai_fp16")
    assert second.backbone.text_encoder_calls == 0
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)
