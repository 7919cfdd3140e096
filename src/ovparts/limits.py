"""Resource bounds on untrusted inputs: every size read from a file is checked against one of these first.

Images, label maps, object masks, checkpoint configs and checkpoint files all declare their sizes before
their data (an image header, a safetensors header, a zip directory, a config.json). ovparts reads that
declaration, compares it with the bound here, and refuses with one sentence before committing memory or CPU
to it. Each bound has a default that admits every real input with a wide margin and an environment variable
that changes it for the whole process (read at the time of the check, so tests and long-running servers
can change it). SECURITY.md lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Bound:
    """One limit: its environment variable, its default and what it bounds (for messages and docs)."""

    env: str
    default: int
    what: str

    def value(self) -> int:
        """The bound now: the environment variable when set to a positive integer, else the default."""
        text = os.environ.get(self.env, "").strip().replace("_", "")
        if not text:
            return self.default
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"{self.env} must be a positive integer ({self.what}), not {text!r}.")
        return int(text)


# Pillow's own decompression-bomb threshold; 13,000 x 13,000 pixels and beyond are refused from the header.
MAX_IMAGE_PIXELS = Bound("OVPARTS_MAX_IMAGE_PIXELS", 178_956_970, "pixels of an image, label map or mask")
# A checkpoint's config.json: a few kilobytes in practice.
MAX_CONFIG_BYTES = Bound("OVPARTS_MAX_CONFIG_BYTES", 1 << 20, "bytes of a checkpoint's config.json")
# Levels of nesting in a model config (real ones have 2).
MAX_CONFIG_DEPTH = Bound("OVPARTS_MAX_CONFIG_DEPTH", 8, "levels of nesting in a model config")
# Any layer count in a model config: ViT-bigG has 48, DINOv2-g 40, ResNet-101's largest stage 23.
MAX_LAYERS = Bound("OVPARTS_MAX_LAYERS", 256, "layers of any one stack in a model config")
# Any other integer size in a model config (widths, heads, image sizes, vocabulary size: CLIP's is 49,408).
MAX_CONFIG_INT = Bound("OVPARTS_MAX_CONFIG_INT", 1 << 20, "any integer size in a model config")
# Parameters and buffers of a model, in bytes, computed on the meta device before anything is allocated.
# CAT-Seg ViT-L/14 holds about 1.8 GB; ViT-G/14-sized backbones about 10 GB.
MAX_MODEL_BYTES = Bound("OVPARTS_MAX_MODEL_BYTES", 16 << 30, "bytes of a model's parameters and buffers")
# A safetensors header (the safetensors library's own limit is 100 MB).
MAX_HEADER_BYTES = Bound("OVPARTS_MAX_HEADER_BYTES", 100_000_000, "bytes of a safetensors header")
# A zip-based .pth: the bytes its entries inflate to, in all.
MAX_CHECKPOINT_BYTES = Bound("OVPARTS_MAX_CHECKPOINT_BYTES", 16 << 30, "bytes a checkpoint file inflates to")
# A zip-based .pth entry may inflate to at most this many times its stored size (torch.save stores entries
# uncompressed, and weights do not compress much; a zip bomb inflates a thousandfold).
MAX_INFLATION_RATIO = Bound("OVPARTS_MAX_INFLATION_RATIO", 20, "how much a checkpoint entry may inflate")

ALL_BOUNDS = (
    MAX_IMAGE_PIXELS,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_LAYERS,
    MAX_CONFIG_INT,
    MAX_MODEL_BYTES,
    MAX_HEADER_BYTES,
    MAX_CHECKPOINT_BYTES,
    MAX_INFLATION_RATIO,
)


def nesting_depth(value: object, limit: int) -> int:
    """How deeply lists and dicts nest in ``value``, counting no further than ``limit + 1`` (no recursion)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def check_model_bytes(model: object, what: str) -> None:
    """Refuse a model (built on the ``meta`` device) whose parameters and buffers exceed ``MAX_MODEL_BYTES``.

    ``what`` starts the sentence: "The clipseg config of 'folder'".
    """
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())  # type: ignore[attr-defined]
    most = MAX_MODEL_BYTES.value()
    if size > most:
        raise ConfigError(
            f"{what} describes {size} bytes of parameters, more than the limit of {most} (OVPARTS_MAX_MODEL_BYTES)."
        )
