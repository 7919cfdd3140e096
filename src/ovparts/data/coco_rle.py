"""COCO run-length encoding of binary masks, in both directions, without pycocotools.

One codec for both users: the dataset readers decode the RLE that ADE20K-Part-234 and PartImageNet store,
and the server encodes each part of a label map for its ``coco_rle`` answers. It lives beside the readers
(and not in ``ovparts.serve``) so that reading data never imports the server's web stack.

COCO reads a mask in column-major (Fortran) order and stores the lengths of alternating runs, starting with
a run of zeros (which may be empty). Its compact string form writes each count, after the third as a
difference to the count two places back, in 5-bit groups offset into printable ASCII (``rleToString`` /
``rleFrString`` in pycocotools' ``maskApi.c``); ``pycocotools.mask.decode`` reads that form directly.

Decoding checks what pycocotools trusts: runs must be non-negative and cover exactly height x width pixels,
and a compressed string must stay inside its alphabet and end its last group, with at most 13 groups (64
bits) a count, as in ``maskApi.c``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FIRST_CHAR = 48  # '0': the compact form's groups are offset into printable ASCII from here
ALPHABET_SIZE = 64  # six bits a character: five of value, one "more groups follow"
MAX_GROUPS = 13  # 13 groups of 5 bits hold a 64-bit count


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


def checked_counts(counts: Sequence[int], height: int, width: int) -> list[int]:
    """``counts`` as ints, or ``ValueError`` when a run is negative or they do not cover height x width."""
    runs = [int(c) for c in counts]
    if any(r < 0 for r in runs):
        raise ValueError("the RLE has a negative run length")
    if sum(runs) != height * width:
        raise ValueError(f"RLE covers {sum(runs)} pixels, expected {height * width}")
    return runs


def decode_counts(counts: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The (H, W) boolean mask that ``counts`` describes; the inverse of ``encode_counts``."""
    height, width = int(size[0]), int(size[1])
    runs = checked_counts(counts, height, width)
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((width, height)).T


def counts_to_string(counts: Sequence[int]) -> str:
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
            out.append(chr(chunk + FIRST_CHAR))
    return "".join(out)


def string_to_counts(text: str | bytes) -> list[int]:
    """Run lengths from COCO's compact string (``str`` or pycocotools' ``bytes``); ``ValueError`` when
    it is not one. The inverse of ``counts_to_string``."""
    if isinstance(text, str) and not text.isascii():
        raise ValueError("the compressed RLE string holds characters outside its alphabet")
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    if any(not FIRST_CHAR <= byte < FIRST_CHAR + ALPHABET_SIZE for byte in data):
        raise ValueError("the compressed RLE string holds characters outside its alphabet")
    counts: list[int] = []
    position = 0
    while position < len(data):
        value, groups, more = 0, 0, True
        while more:
            if position >= len(data) or groups >= MAX_GROUPS:
                raise ValueError("the compressed RLE string is malformed")
            chunk = data[position] - FIRST_CHAR
            value |= (chunk & 0x1F) << (5 * groups)
            more = bool(chunk & 0x20)
            position += 1
            groups += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * groups)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode(mask: np.ndarray, compressed: bool = True) -> dict:
    """A COCO RLE object ``{"size": [H, W], "counts": ...}`` for one binary mask: the compact string
    (``compressed``, as pycocotools writes it) or the plain list of runs (as COCO's ``iscrowd`` files do)."""
    counts = encode_counts(mask)
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "counts": counts_to_string(counts) if compressed else counts,
    }


def decode(rle: dict) -> np.ndarray:
    """The boolean mask of a COCO RLE object whose counts are a compact string (or bytes) or a list."""
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        counts = string_to_counts(counts)
    return decode_counts(list(counts), rle["size"])
