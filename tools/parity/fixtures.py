"""What every parity case shares: the photo, seeding, fp16 storage, the CLIP BPE tokenizer folder, writing.

A case folder (``tests/fixtures/official/<case>/``) holds ``official.pth`` (the official-format checkpoint),
``case.json`` (where it came from and how it was run) and ``outputs.safetensors`` (what the official code
computed). The tests read the same photo from scikit-image, so it is never stored.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

GENERATOR_VERSION = 1
PHOTO = "skimage.data.chelsea"  # 451 x 300 RGB, a cat


def photo() -> np.ndarray:
    """(300, 451, 3) uint8 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.chelsea())


def write_photo(folder: Path) -> Path:
    """The photo as a lossless PNG, for official code that reads images from files."""
    from PIL import Image

    path = folder / "chelsea.png"
    Image.fromarray(photo()).save(path)
    return path


def ellipse_mask(
    height: int, width: int, centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    """(H, W) uint8, 1 inside the axis-aligned ellipse (centre and radii as (y, x) fractions of the size)."""
    ys, xs = np.mgrid[0:height, 0:width]
    dy = (ys + 0.5 - centre[0] * height) / (radii[0] * height)
    dx = (xs + 0.5 - centre[1] * width) / (radii[1] * width)
    return (dy**2 + dx**2 <= 1.0).astype(np.uint8)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fp16_rounded(state: dict) -> dict:
    """Floating tensors stored as fp16 (what goes into the file); other tensors unchanged."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def write_clip_tokenizer(bpe_gz: Path, folder: Path) -> Path:
    """OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` as a transformers CLIP tokenizer folder.

    The vocabulary is OpenAI's: the 256 byte symbols, the same with ``</w>``, one token per merge (the first
    48894 merges), then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
    """
    with gzip.open(bpe_gz, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    config = {**special, "model_max_length": 77, "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, in OpenAI's order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for byte in range(256):
        if byte not in keep:
            keep.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars), strict=True))


def subsample(tensor, stride: int):
    """Every ``stride``-th pixel of the last two dimensions (a stride coprime to the network's upsampling
    factors, so every position of its transposed-convolution kernels is sampled)."""
    return tensor[..., ::stride, ::stride].contiguous()


def write_case(
    out: Path, case: dict[str, Any], checkpoint: dict, outputs: dict[str, Any], fp16: bool = True
) -> Path:
    """``official.pth`` ({"model": state dict}, fp16 floats when ``fp16``), ``case.json``, ``outputs.safetensors``."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    model = fp16_rounded(checkpoint) if fp16 else checkpoint
    torch.save({"model": model}, out / "official.pth")
    case = {
        **case,
        "generator_version": GENERATOR_VERSION,
        "photo": PHOTO,
        "checkpoint_dtype": "float16" if fp16 else "float32",
    }
    (out / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    tensors = {k: torch.as_tensor(v).contiguous() for k, v in outputs.items()}
    save_file(tensors, out / "outputs.safetensors")
    return out
