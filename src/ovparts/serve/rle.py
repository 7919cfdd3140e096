"""COCO run-length encoding, written out so the API needs no pycocotools.

COCO reads a binary mask in column-major (Fortran) order and stores the lengths of alternating runs,
starting with a run of zeros (which may be empty). Its compact string form writes each count, after the
third as a difference to the count two places back, in 5-bit groups offset into printable ASCII
(``rleToString`` in pycocotools' ``maskApi.c``); ``pycocotools.mask.decode`` reads that form directly.
"""

from __future__ import annotations

import numpy as np


def encode_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a 2-D boolean mask in column-major order, beginning with the zeros."""
    if mask.ndim != 2:
        raise ValueError(f"A mask for RLE must be 2-D, got shape {mask.shape}.")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    # Positions where the value changes, plus the two ends, give the run boundaries.
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return counts


def decode_counts(counts: list[int], size: tuple[int, int]) -> np.ndarray:
    """The (H, W) boolean mask that ``counts`` describes; the inverse of ``encode_counts``."""
    height, width = size
    if sum(counts) != height * width:
        raise ValueError(f"The counts add up to {sum(counts)} pixels, not {height}x{width}.")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T


def counts_to_string(counts: list[int]) -> str:
    """COCO's compact string form of run lengths (what ``pycocotools`` writes in result files)."""
    out: list[str] = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5  # arithmetic shift, as C's on a signed long
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            out.append(chr(chunk + 48))
    return "".join(out)


def string_to_counts(text: str) -> list[int]:
    """Run lengths from COCO's compact string; the inverse of ``counts_to_string``."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            chunk = ord(text[position]) - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position += 1
            shift += 5
            if not more and chunk & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode(mask: np.ndarray) -> dict:
    """A COCO RLE object ``{"size": [H, W], "counts": "..."}`` for one binary mask."""
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(encode_counts(mask))}


def decode(rle: dict) -> np.ndarray:
    """The boolean mask of a COCO RLE object with string or list counts."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = string_to_counts(counts)
    return decode_counts(list(counts), tuple(rle["size"]))
