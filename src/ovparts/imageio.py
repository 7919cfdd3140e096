"""Reading images from anything a user may hand us, and writing outputs without leaving half-written files."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# PIL's own bomb guard warns first and raises at twice this; we refuse at this size, with a sentence.
MAX_IMAGE_PIXELS = 178_956_970

ImageLike = str | os.PathLike | Image.Image | np.ndarray


def load_image(image: ImageLike, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An RGB PIL image, EXIF rotation applied; 16-bit, CMYK, palette, grayscale and alpha are converted."""
    if isinstance(image, Image.Image):
        return _to_rgb(image, "the given image")
    if isinstance(image, np.ndarray):
        return _array_to_image(image)
    if isinstance(image, (str, os.PathLike)):
        return _read_file(Path(image), max_pixels)
    raise ImageError(
        f"Cannot read an image from a {type(image).__name__}; give a path, a PIL image or an array."
    )


def _read_file(path: Path, max_pixels: int) -> Image.Image:
    if not path.is_file():
        raise ImageError(f"The image file {str(path)!r} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"The image file {str(path)!r} cannot be read ({err.strerror}).") from err
    if not data:
        raise ImageError(f"The image file {str(path)!r} is empty.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageError(
                    f"The image {str(path)!r} is {width}x{height} pixels, more than the limit of {max_pixels}."
                )
            probe.load()
            return _to_rgb(probe, repr(str(path)))
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"The file {str(path)!r} is not an image format that Pillow can read.") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"The image {str(path)!r} is corrupt or truncated ({err}).") from err


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


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves a half-written file
    (``ovparts.outputs.atomic_write``: recognisable temp names, one sentence on failure)."""
    from .outputs import atomic_write as write_atomically  # noqa: PLC0415

    write_atomically(path, write)


def save_png(path: str | os.PathLike, image: Image.Image) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
