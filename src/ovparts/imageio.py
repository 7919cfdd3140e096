"""Reading images from anything a user may hand us (writing outputs is ``ovparts.output_files``)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import limits
from .errors import ImageError

# PIL's own bomb guard warns first and raises at twice this; we refuse at this size, with a sentence.
# The bound in force is ``limits.MAX_IMAGE_PIXELS`` (environment variable OVPARTS_MAX_IMAGE_PIXELS).
MAX_IMAGE_PIXELS = limits.MAX_IMAGE_PIXELS.default

ImageLike = str | os.PathLike | Image.Image | np.ndarray


def load_image(image: ImageLike, max_pixels: int | None = None) -> Image.Image:
    """An RGB PIL image, EXIF rotation applied; 16-bit, CMYK, palette, grayscale and alpha are converted.

    Files are refused from their header when they declare more than ``max_pixels`` pixels (default:
    ``ovparts.limits.MAX_IMAGE_PIXELS``), before any pixel is decoded.
    """
    if isinstance(image, Image.Image):
        return _to_rgb(image, "the given image")
    if isinstance(image, np.ndarray):
        return _array_to_image(image)
    if isinstance(image, (str, os.PathLike)):
        return _read_file(Path(image), max_pixels)
    raise ImageError(
        f"Cannot read an image from a {type(image).__name__}; give a path, a PIL image or an array."
    )


def _read_file(path: Path, max_pixels: int | None) -> Image.Image:
    """Decode from the open file: Pillow reads the header first, and the pixels only once it passed.

    Reading the whole file into memory first (as this once did) let a sparse multi-gigabyte file cost
    gigabytes before any check; now the file is streamed, and its size on disk never matters.
    """
    limit = limits.MAX_IMAGE_PIXELS.value() if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageError(f"The image file {str(path)!r} does not exist.")
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"The image file {str(path)!r} is empty.")
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after Pillow is done with it
    except OSError as err:
        raise ImageError(f"The image file {str(path)!r} cannot be read ({err.strerror}).") from err
    label = repr(str(path))
    try:
        with (
            handle,
            opened_within(handle, limit, lambda detail: ImageError(f"The image {label} {detail}.")) as probe,
        ):
            probe.load()
            return _to_rgb(probe, label)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"The file {str(path)!r} is not an image format that Pillow can read.") from err
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:
        raise ImageError(f"The image {str(path)!r} is corrupt or truncated ({_first_line(err)}).") from err


@contextlib.contextmanager
def opened_within(
    source: str | os.PathLike | BinaryIO, limit: int, refuse: Callable[[str], Exception]
) -> Iterator[Image.Image]:
    """An opened, not yet decoded image whose header declares at most ``limit`` pixels.

    The one place where images, label maps and object masks are checked from their header: Pillow's own bomb
    warning is replaced by this bound (its hard stop at twice its limit becomes the same refusal), and
    ``refuse(detail)`` builds the caller's own error from the end of a sentence ("is 40000x40000 pixels, ...").
    Only the first frame is ever decoded, so its size is the one that counts.
    """
    bomb = f"declares more pixels than the limit of {limit} (a decompression bomb?)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except Image.DecompressionBombError as err:
            raise refuse(bomb) from err
        with image:
            width, height = image.size
            if width * height > limit:
                raise refuse(
                    f"is {width}x{height} pixels, more than the limit of {limit} (a decompression bomb?)"
                )
            try:
                yield image
            except Image.DecompressionBombError as err:
                raise refuse(bomb) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0].rstrip(".") if text else type(err).__name__


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    # A broken EXIF block must not lose the picture itself.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    if image.width < 1 or image.height < 1:
        raise ImageError(f"The image {label} has no pixels.")
    if image.mode.startswith("I;16"):
        return _array_to_image(np.asarray(image).astype(np.uint16))
    if image.mode in ("I", "F"):
        return _array_to_image(np.asarray(image, dtype=np.float64))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_image(array: np.ndarray) -> Image.Image:
    """Accept HxW, HxWx1, HxWx3 and HxWx4 arrays of any numeric dtype."""
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., :3] if array.shape[2] != 1 else array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or 0 in array.shape:
        raise ImageError(
            f"An image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {tuple(array.shape)}."
        )
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageError(f"An image array must hold real numbers, got dtype {array.dtype}.")
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageError("The image array contains NaN or infinite values.")
        low, high = float(values.min()), float(values.max())
        if array.dtype == np.uint16:
            values = values / 257.0
        elif np.issubdtype(array.dtype, np.floating) and low >= 0.0 and high <= 1.0:
            values = values * 255.0
        elif high > 255.0:
            values = (
                values * (255.0 / high) if low >= 0 else (values - low) * (255.0 / max(high - low, 1e-12))
            )
        array = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(array))
    return image.convert("RGB")
