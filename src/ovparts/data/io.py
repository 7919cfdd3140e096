"""Reading label files safely: every failure becomes a ``DatasetError`` that names the file.

Readers call these helpers so that a missing, truncated or malformed file produces one sentence a user can act
on, and so that file encodings (255 / 65535 ignore values, palette PNGs, uint16 PNGs) are decoded in one place.
Images and label maps are opened lazily and refused from their header (pixel count, size against the image)
before a pixel is decoded, so a decompression bomb costs nothing and is skipped and counted like any other
bad file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import limits
from ..errors import DatasetError
from ..imageio import opened_within
from .records import IGNORE

# Everything Pillow may raise on a hostile file, besides "not an image at all".
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    MemoryError,
)


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
    except RecursionError:
        # the parser descends once per nesting level; real dataset files nest 4 deep
        raise DatasetError(f"{path}: the JSON is nested too deeply to be a dataset file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: could not be read ({exc}).") from exc


@contextlib.contextmanager
def open_image(path: Path, what: str = "image") -> Iterator[Image.Image]:
    """An opened, not yet decoded image whose header declares at most ``limits.MAX_IMAGE_PIXELS`` pixels.

    Every decoding failure inside the block becomes a ``DatasetError`` naming the file.
    """
    limit = limits.MAX_IMAGE_PIXELS.value()
    try:
        with opened_within(
            path, limit, lambda detail: DatasetError(f"{path}: the {what} {detail}.")
        ) as image:
            yield image
    except DatasetError:
        raise
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: the {what} does not exist.") from exc
    except UnidentifiedImageError as exc:
        raise DatasetError(f"{path}: not a readable {what} ({_first_line(exc)}).") from exc
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{path}: not a readable {what} ({_first_line(exc)}).") from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    with open_image(path) as image:
        width, height = image.size
    return height, width


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image to HxWx3 uint8; truncated files and decompression bombs become ``DatasetError``."""
    with open_image(path) as image:
        return np.asarray(image.convert("RGB"))


def read_label_png(
    path: Path, ignore_value: int, num_classes: int, expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """A single-channel label PNG as HxW int64 with ``ignore_value`` turned into -1.

    Values must be ``< num_classes`` or equal to ``ignore_value``; anything else means the file does not
    belong to this benchmark's class table, and we say so rather than score garbage.
    """
    with open_image(path, "label map") as image:
        if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
            raise DatasetError(
                f"{path}: label maps must be single-channel PNGs, this one is mode {image.mode}."
            )
        size = (image.height, image.width)
        if expected_size is not None and size != tuple(expected_size):
            # refused from the header: a mismatched (or bomb-sized) map is never decoded
            raise DatasetError(
                f"{path}: the label map is {size[1]}x{size[0]} but its image is "
                f"{expected_size[1]}x{expected_size[0]} (width x height)."
            )
        raw = np.asarray(image)
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
