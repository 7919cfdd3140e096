"""The built-in byte-level CLIP tokenizer that configs with ``tokenizer="tiny"`` use.

Randomly initialised models (the "default" and "tiny" configs of every method) need a tokenizer but no
download: this one has a token per byte (and its end-of-word form), no merges, and is written in the
Hugging Face on-disk format so it loads through the same code as a real checkpoint's tokenizer.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def write_tokenizer_config(folder: Path) -> None:
    """transformers' ``tokenizer_config.json`` for a CLIP tokenizer (BOS / EOS, EOS doubling as UNK and PAD)."""
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def write_tiny_tokenizer(folder: str | Path) -> Path:
    """A CLIP tokenizer with one token per byte (plus end-of-word forms) and no merges: 514 tokens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    write_tokenizer_config(folder)
    return folder


def tiny_tokenizer_special_ids() -> dict[str, int]:
    """Token ids a text config must agree on to use this tokenizer (vocab size and BOS/EOS/PAD)."""
    size = 2 * 256
    return {"vocab_size": size + 2, "bos_token_id": size, "eos_token_id": size + 1, "pad_token_id": size + 1}


@lru_cache(maxsize=1)
def tiny_tokenizer_folder() -> Path:
    """A process-wide temporary folder holding the tiny tokenizer (for randomly initialised models)."""
    return write_tiny_tokenizer(Path(tempfile.mkdtemp(prefix="ovparts-tokenizer-")))
