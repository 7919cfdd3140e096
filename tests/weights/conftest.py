"""Fixtures for the weights tests: a local HTTP server and synthetic official CAT-Seg checkpoints."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from .server import LocalServer


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


@pytest.fixture(scope="session")
def tokenizer_folder():
    from ovparts.testing import tiny_tokenizer_folder

    return str(tiny_tokenizer_folder())


def official_bytes(seed: int = 0, variant: str = "cvpr") -> bytes:
    """An official-layout CAT-Seg ``.pth`` (the converter tests' key writer), as the file's bytes."""
    from ovparts.testing import tiny_tokenizer_folder
    from tests.convert.checks import vocab_size
    from tests.convert.official_catseg import official_catseg

    state = official_catseg(variant, seed=seed, vocab=vocab_size(tiny_tokenizer_folder()))
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def official_pth() -> bytes:
    return official_bytes(0)


@pytest.fixture
def register(monkeypatch):
    """Make entries published by their method for this test (what a method's weights.py declares)."""
    from ovparts.models import registry

    registry.available_models()

    def add(*entries):
        for entry in entries:
            spec = registry._REGISTRY[entry.method]
            monkeypatch.setitem(
                registry._REGISTRY,
                entry.method,
                dataclasses.replace(spec, published=(*spec.published, entry)),
            )
        return entries[0] if len(entries) == 1 else entries

    return add
