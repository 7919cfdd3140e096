"""Fixtures of the official parity suite (tests/fixtures/official/<case>/, written by tools/parity/generate.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

OFFICIAL = Path(__file__).resolve().parents[1] / "fixtures" / "official"


@pytest.fixture(scope="session")
def clip_bpe_tokenizer_dir(tmp_path_factory) -> Path:
    """Provisional: OpenAI's CLIP BPE tokenizer (49408 tokens) as transformers files, built from the merges
    file in the installed open_clip_torch wheel (the ``tokenizer`` branch adds the shared fixture)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(f) / "bpe_simple_vocab_16e6.txt.gz" for f in folders]
    found = [p for p in found if p.is_file()]
    if not found:
        pytest.fail(
            "open_clip_torch is not installed (pip install --no-deps open_clip_torch).", pytrace=False
        )
    with gzip.open(found[0], "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    for extra, byte in enumerate(b for b in range(256) if b not in printable):
        table[byte] = chr(256 + extra)
    symbols = list(table.values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder = tmp_path_factory.mktemp("clip-bpe")
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


class OfficialCase:
    """One committed case: its description, the official checkpoint and the official outputs."""

    def __init__(self, name: str) -> None:
        from safetensors.torch import load_file

        self.folder = OFFICIAL / name
        self.info = json.loads((self.folder / "case.json").read_text())
        self.checkpoint = self.folder / "official.pth"
        self.outputs = load_file(self.folder / "outputs.safetensors")


@pytest.fixture(scope="session")
def official_case():
    cache: dict[str, OfficialCase] = {}

    def load(name: str) -> OfficialCase:
        if name not in cache:
            cache[name] = OfficialCase(name)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def chelsea_rgb() -> np.ndarray:
    from skimage import data

    return data.chelsea()
