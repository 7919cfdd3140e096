"""Fixtures of the official parity tests.

``clip_bpe_tokenizer_dir`` is provisional: a real CLIP BPE tokenizer folder (vocab.json + merges.txt) built
from OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` as shipped in the ``open_clip_torch`` wheel. The shared
session fixture of the same name replaces it once both branches are merged.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"


def _bytes_to_unicode() -> dict[int, str]:
    """OpenAI's reversible byte -> printable character table (the GPT-2 / CLIP BPE alphabet)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def write_clip_bpe_folder(gz_path: Path, folder: Path) -> Path:
    """vocab.json + merges.txt in transformers' CLIPTokenizer format, ids as OpenAI's SimpleTokenizer."""
    with gzip.open(gz_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 77,
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def clip_bpe_tokenizer_dir(tmp_path_factory) -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        pytest.fail("open_clip_torch is not installed (make install-dev installs it with --no-deps).")
    gz = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    return write_clip_bpe_folder(gz, tmp_path_factory.mktemp("clip-bpe"))
