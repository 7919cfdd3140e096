"""Helpers shared by every parity case: the photo, seeded random weights, and the fixture files.

A fixture folder ``tests/fixtures/official/<case>/`` holds ``official.pth`` (the checkpoint in the official
layout), ``case.json`` (what was run) and ``outputs.safetensors`` (what the official code produced).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

GENERATOR_VERSION = 2
# Pixels whose two best official scores are this close are ties at float precision: either label is the
# official answer up to rounding (random weights make some, e.g. where every decoder unit is switched off).
TIE_GAP = 1e-6
PHOTO = "skimage.data.chelsea"


def photo() -> np.ndarray:
    """The test photo, (300, 451, 3) uint8 RGB."""
    from skimage import data  # noqa: PLC0415

    return data.chelsea()


def save_photo_png(folder: Path) -> Path:
    """The photo as a lossless PNG file, so a file reader sees exactly the array the tests use."""
    from PIL import Image  # noqa: PLC0415

    path = folder / "chelsea.png"
    Image.fromarray(photo()).save(path)
    return path


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output unit of a weight: (out, in, *kernel) -> in * prod(kernel); 1-D -> its length."""
    if len(shape) < 2:
        return max(shape[0] if shape else 1, 1)
    return int(np.prod(shape[1:]))


def norm_modules(model: torch.nn.Module) -> set[str]:
    """Names of the normalisation modules (LayerNorm, GroupNorm, BatchNorm, detectron2's FrozenBatchNorm)."""
    return {name for name, m in model.named_modules() if "Norm" in type(m).__name__}


def randomize(
    state: Mapping[str, torch.Tensor],
    gen: torch.Generator,
    norms: set[str],
    gain: float = 1.0,
    keep: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Seeded random values for every floating tensor, scaled so activations neither vanish nor explode.

    Weights get N(0, gain^2 / fan_in); weights of the modules in ``norms`` 1 + N(0, 0.1^2) (running
    variances 1 + |N(0, 0.1^2)|); biases and other 1-D parameters N(0, 0.05^2). Keys containing any of
    ``keep`` (buffers such as attention masks) are copied unchanged.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not value.is_floating_point() or any(k in key for k in keep):
            out[key] = value.clone()
            continue
        shape = tuple(value.shape)
        noise = torch.randn(shape, generator=gen)
        module, _, leaf = key.rpartition(".")
        if module in norms and leaf == "weight":
            out[key] = 1 + 0.1 * noise
        elif module in norms and leaf == "running_var":
            out[key] = 1 + 0.1 * noise.abs()
        elif value.dim() <= 1:
            out[key] = 0.05 * noise
        else:
            out[key] = noise * (gain / fan_in(shape) ** 0.5)
    return out


def fp16_rounded(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors stored as fp16 (a smaller fixture); the official run uses exactly these values."""
    return {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in state.items()
    }


def as_float32(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def commit_of(repo: Path, rev: str = "HEAD") -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", rev], check=True, capture_output=True, text=True
    ).stdout.strip()


def write_fixture(
    folder: Path,
    checkpoint: Mapping[str, torch.Tensor],
    case: dict,
    outputs: Mapping[str, torch.Tensor],
) -> None:
    """Write ``official.pth`` ({"model": state dict}, as detectron2 saves), ``case.json`` and outputs."""
    from safetensors.torch import save_file  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": dict(checkpoint)}, folder / "official.pth")
    (folder / "case.json").write_text(json.dumps(case, indent=2, sort_keys=False) + "\n")
    save_file({k: v.detach().contiguous() for k, v in outputs.items()}, str(folder / "outputs.safetensors"))


def spread(probabilities: torch.Tensor) -> dict[str, float]:
    """How informative a (K, H, W) probability map is: range, std, and how many labels the argmax uses."""
    labels = probabilities.argmax(0)
    counts = torch.bincount(labels.flatten(), minlength=probabilities.shape[0]).float()
    return {
        "min": float(probabilities.min()),
        "max": float(probabilities.max()),
        "std": float(probabilities.std()),
        "labels_used": int((counts > 0).sum()),
        "largest_label_share": float(counts.max() / counts.sum()),
    }


def ties(scores: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: where the two highest of the (K, H, W) scores differ by at most :data:`TIE_GAP`."""
    top = scores.float().topk(2, dim=0).values
    return (top[0] - top[1]) <= TIE_GAP


def ellipse_mask(
    height: int, width: int, centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    """(H, W) uint8, 1 inside the axis-aligned ellipse (centre and radii as (y, x) fractions of the size)."""
    ys, xs = np.mgrid[0:height, 0:width]
    dy = (ys + 0.5 - centre[0] * height) / (radii[0] * height)
    dx = (xs + 0.5 - centre[1] * width) / (radii[1] * width)
    return (dy**2 + dx**2 <= 1.0).astype(np.uint8)


def subsample(tensor: torch.Tensor, stride: int) -> torch.Tensor:
    """Every ``stride``-th pixel of the last two dimensions (a stride coprime to the network's upsampling
    factors, so every position of its transposed-convolution kernels is sampled)."""
    return tensor[..., ::stride, ::stride].contiguous()


def write_clip_tokenizer(bpe_gz: Path, folder: Path) -> Path:
    """OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` as a transformers CLIP tokenizer folder, for official code
    that loads its tokenizer with ``from_pretrained``.

    The vocabulary is OpenAI's: the 256 byte symbols, the same with ``</w>``, one token per merge (the first
    48894 merges), then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
    """
    import gzip  # noqa: PLC0415

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
