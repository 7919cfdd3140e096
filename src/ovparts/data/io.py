"""Reading label files safely: every failure becomes a ``DatasetError`` that names the file.

Readers call these helpers so that a missing, truncated or malformed file produces one sentence a user can act
on, and so that file encodings (255 / 65535 ignore values, palette PNGs, uint16 PNGs) are decoded in one place.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError
from .records import IGNORE


def read_json(path: Path) -> Any:
    """Parse a JSON file, naming the file (and the position) when it is missing or corrupt."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: the file does not exist.") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: could not be read ({exc}).") from exc


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: the image does not exist.") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc}).") from exc
    return height, width


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image to HxWx3 uint8; truncated files and decompression bombs become ``DatasetError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: the image does not exist.") from exc
    except (
        UnidentifiedImageError,
        OSError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc}).") from exc


def read_label_png(
    path: Path, ignore_value: int, num_classes: int, expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """A single-channel label PNG as HxW int64 with ``ignore_value`` turned into -1.

    Values must be ``< num_classes`` or equal to ``ignore_value``; anything else means the file does not
    belong to this benchmark's class table, and we say so rather than score garbage.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                raise DatasetError(
                    f"{path}: label maps must be single-channel PNGs, this one is mode {image.mode}."
                )
            raw = np.asarray(image)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: the label map does not exist.") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable PNG ({exc}).") from exc
    if expected_size is not None and raw.shape[:2] != tuple(expected_size):
        raise DatasetError(
            f"{path}: the label map is {raw.shape[1]}x{raw.shape[0]} but its image is "
            f"{expected_size[1]}x{expected_size[0]} (width x height)."
        )
    labels = raw.astype(np.int64)
    ignore = labels == ignore_value
    bad = ~ignore & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        values = np.unique(labels[bad])[:5].tolist()
        raise DatasetError(
            f"{path}: contains ids {values} outside 0..{num_classes - 1} (ignore value {ignore_value})."
        )
    labels[ignore] = IGNORE
    return labels
