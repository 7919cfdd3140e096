"""Tiny offline stand-ins for hub downloads: a byte-level CLIP tokenizer and tiny checkpoints.

They are written in the exact on-disk format of the Hugging Face hub, so tests (and `config="tiny"` models)
exercise the same loading code as a real download, with no network.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# A CLIPSeg small enough for unit tests yet with every structural feature of rd64-refined
# (patch 16 / 4 = transposed-convolution kernel 4, three extract layers, FiLM at layer 0).
TINY_CLIPSEG = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "image_size": 64,
        "patch_size": 16,
    },
    "projection_dim": 32,
    "extract_layers": [1, 2, 3],
    "reduce_dim": 16,
    "decoder_num_attention_heads": 2,
    "decoder_intermediate_size": 32,
    "use_complex_transposed_convolution": True,
}

# The architecture of CIDAS/clipseg-rd64-refined (ViT-B/16, 352 px), for benchmark-size random models.
RD64_REFINED = {
    "text_config": {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "vocab_size": 49408,
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
    },
    "projection_dim": 512,
    "extract_layers": [3, 6, 9],
    "reduce_dim": 64,
    "decoder_num_attention_heads": 4,
    "decoder_intermediate_size": 2048,
    "use_complex_transposed_convolution": True,
}


def _bytes_to_unicode() -> dict[int, str]:
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


def write_tiny_tokenizer(folder: str | Path) -> Path:
    """A CLIP tokenizer with one token per byte (plus end-of-word forms) and no merges: 514 tokens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    _write_tokenizer_config(folder)
    return folder


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
    symbols = list(_bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges), BOS, EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    _write_tokenizer_config(folder)
    return folder


def _write_tokenizer_config(folder: Path) -> None:
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


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


def tiny_tokenizer_special_ids() -> dict[str, int]:
    """Token ids the tiny text config must agree on (vocab size and BOS/EOS/PAD)."""
    size = 2 * 256
    return {"vocab_size": size + 2, "bos_token_id": size, "eos_token_id": size + 1, "pad_token_id": size + 1}


@lru_cache(maxsize=1)
def tiny_tokenizer_folder() -> Path:
    """A process-wide temporary folder holding the tiny tokenizer (for randomly initialised models)."""
    return write_tiny_tokenizer(Path(tempfile.mkdtemp(prefix="ovparts-tokenizer-")))


def clipseg_hf_config(architecture: dict | None = None, special: dict[str, int] | None = None):
    """A transformers ``CLIPSegConfig`` for the given architecture dict, with the tokenizer ids ``special``
    (vocabulary size and BOS / EOS / PAD; the tiny tokenizer's by default)."""
    from transformers import CLIPSegConfig

    architecture = json.loads(json.dumps(architecture or TINY_CLIPSEG))
    text = architecture.pop("text_config")
    special = special or tiny_tokenizer_special_ids()
    text = (
        {**special, **text}
        if "vocab_size" not in text
        else {**special, **text, "vocab_size": text["vocab_size"]}
    )
    return CLIPSegConfig(text_config=text, vision_config=architecture.pop("vision_config"), **architecture)


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


# A DINOv2 small enough for unit tests, with every structural feature of dinov2-small (layer scale, CLS,
# a square position table that must be interpolated to other grids).
TINY_DINOV2 = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "mlp_ratio": 2,
    "patch_size": 8,
    "image_size": 32,
}
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
