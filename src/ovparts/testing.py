"""Tiny offline stand-ins for hub downloads: a byte-level CLIP tokenizer and tiny checkpoints.

They are written in the exact on-disk format of the Hugging Face hub, so tests (and `config="tiny"` models)
exercise the same loading code as a real download, with no network.
"""

from __future__ import annotations

import json
from pathlib import Path

from .backbones.dino import TINY_DINOV2
from .methods.clipseg.config import RD64_REFINED, TINY_CLIPSEG, clipseg_hf_config
from .text.tiny_tokenizer import (
    BOS,
    EOS,
    bytes_to_unicode,
    tiny_tokenizer_folder,
    tiny_tokenizer_special_ids,
    write_tiny_tokenizer,
    write_tokenizer_config,
)

__all__ = [
    "BOS",
    "EOS",
    "RD64_REFINED",
    "TINY_CLIPSEG",
    "TINY_DINOV2",
    "TINY_DINO_V1",
    "clipseg_hf_config",
    "find_openai_bpe",
    "tiny_tokenizer_folder",
    "tiny_tokenizer_special_ids",
    "tokenizer_special_ids",
    "write_clip_bpe_tokenizer",
    "write_clipseg_checkpoint",
    "write_dino_checkpoint",
    "write_tiny_tokenizer",
]

# OpenAI's CLIP BPE merges file, as the open_clip_torch wheel ships it (CI installs that wheel without its
# dependencies, only for this file and the reference tokenizer beside it; open_clip itself is never imported).
OPENAI_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
OPENAI_BPE_PACKAGE = "open_clip_torch"
OPENAI_BPE_INSTALL = "pip install --no-deps open_clip_torch==3.3.0"
OPENAI_BPE_MERGES = 49152 - 256 - 2  # lines 1..48894 of the file; the vocabulary then holds 49408 tokens


def find_openai_bpe() -> Path | None:
    """The installed ``open_clip/bpe_simple_vocab_16e6.txt.gz``, located without importing open_clip."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("open_clip")  # a top-level package: found, not executed
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(folder) / OPENAI_BPE_FILE).is_file():
            return Path(folder) / OPENAI_BPE_FILE
    try:
        files = importlib.metadata.files(OPENAI_BPE_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == OPENAI_BPE_FILE and Path(entry.locate()).is_file():
            return Path(entry.locate())
    return None


def write_clip_bpe_tokenizer(folder: str | Path, bpe_gz_path: str | Path) -> Path:
    """OpenAI's CLIP BPE tokenizer in transformers' format (vocab.json, merges.txt, tokenizer_config.json).

    The vocabulary is built as OpenAI's tokenizer builds it from the merges file: the 256 byte symbols, the
    same with ``</w>``, one token per merge, then start / end of text (49406 / 49407). Offline, so tests can
    run the real tokenizer's ids (and its 49408-row embedding) without a hub download.
    """
    import gzip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(bpe_gz_path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = lines[1 : 1 + OPENAI_BPE_MERGES]
    if len(merges) != OPENAI_BPE_MERGES or any(len(m.split()) != 2 for m in merges):
        raise ValueError(f"{str(bpe_gz_path)!r} is not OpenAI's CLIP merges file.")
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges), BOS, EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    write_tokenizer_config(folder)
    return folder


def tokenizer_special_ids(folder: str | Path) -> dict[str, int]:
    """Vocabulary size and BOS / EOS / PAD ids of the tokenizer files in ``folder`` (what a text config needs)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def write_clipseg_checkpoint(
    folder: str | Path, architecture: dict | None = None, seed: int = 0, tokenizer: str | Path | None = None
) -> Path:
    """A random ``CLIPSegForImageSegmentation`` saved with ``save_pretrained``: the hub's folder format.

    ``tokenizer``: a folder of tokenizer files to store beside the weights (e.g. :func:`write_clip_bpe_tokenizer`'s),
    whose size and ids the text config then takes; the tiny tokenizer by default.
    """
    import shutil

    import torch
    from transformers import CLIPSegForImageSegmentation

    folder = Path(folder)
    torch.manual_seed(seed)
    special = tokenizer_special_ids(tokenizer) if tokenizer is not None else None
    model = CLIPSegForImageSegmentation(clipseg_hf_config(architecture, special)).eval()
    model.save_pretrained(folder)
    if tokenizer is None:
        write_tiny_tokenizer(folder)
    else:
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            shutil.copyfile(Path(tokenizer) / name, folder / name)
    return folder


# DINO v1 (facebook/dino-vitb16's layout, ``ViTModel`` without pooler), tiny.
TINY_DINO_V1 = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "patch_size": 8,
    "image_size": 32,
    "qkv_bias": True,
}


def write_dino_checkpoint(
    folder: str | Path, kind: str = "dinov2", architecture: dict | None = None, seed: int = 0
) -> Path:
    """A random DINOv2 (``Dinov2Model``) or DINO v1 (``ViTModel``) saved with ``save_pretrained``: the hub's
    folder format, as ``facebook/dinov2-small`` or ``facebook/dino-vitb16`` download."""
    import torch

    from .backbones.dino import build_dino

    folder = Path(folder)
    torch.manual_seed(seed)
    default = TINY_DINOV2 if kind == "dinov2" else TINY_DINO_V1
    build_dino(kind, dict(architecture or default)).save_pretrained(folder)
    return folder
