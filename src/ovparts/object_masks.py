"""Oracle-Obj object masks: one reader and one meaning for the CLI, the Python API and the server.

An object mask holds, per pixel, an index into the vocabulary's objects. Which value means "no object" follows
the encoding, never the content: 255 in an 8-bit mask, 65535 in a 16-bit one (so 255 is object 255 there),
-1 in a signed-integer array (the value ovparts' own object maps use); a 1-bit mask holds objects 0 and 1.
Any other negative value is refused, as is a lossy file (JPEG): compression noise would turn ids into
other ids. Files are opened lazily and refused from their header (format, mode, size) before a pixel is
decoded.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from . import limits
from .errors import MaskError
from .imageio import opened_within
from .vocabulary import Vocabulary

# Formats that store integers exactly. JPEG, WebP and JPEG 2000 are refused even when lossless is possible:
# the header does not say which, and a mask is a few kilobytes as PNG.
LOSSLESS_FORMATS = ("PNG", "TIFF", "BMP", "PPM", "GIF")
# Pillow mode -> the dtype that keeps the file's bit depth (which decides the "no object" value).
_MODE_DTYPES = {
    "1": np.bool_,
    "L": np.uint8,
    "P": np.uint8,
    "I;16": np.uint16,
    "I;16L": np.uint16,
    "I;16B": np.uint16,
    "I;16N": np.uint16,
    "I": np.int32,
}
NO_OBJECT = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def read_object_mask(
    source: str | os.PathLike | bytes | Image.Image, size: tuple[int, int], label: str | None = None
) -> np.ndarray:
    """Decode a mask file, bytes or PIL image to an (H, W) array whose dtype is the file's bit depth.

    ``size`` is the image's (H, W): a mask of another size, a lossy format, several channels or more pixels
    than ``limits.MAX_IMAGE_PIXELS`` are refused from the header, before decoding.
    """
    if isinstance(source, Image.Image):
        return _decode(source, size, label or "given")
    if isinstance(source, bytes | bytearray):
        label = label or "given"
        stream: io.BufferedIOBase | io.BytesIO = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        label = label or repr(str(path))
        if not path.is_file():
            raise MaskError(f"The object mask {label} does not exist.")
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as err:
            raise MaskError(f"The object mask {label} cannot be read ({err.strerror}).") from err
    limit = limits.MAX_IMAGE_PIXELS.value()
    try:
        with (
            stream,
            opened_within(
                stream, limit, lambda detail: MaskError(f"The object mask {label} {detail}.")
            ) as image,
        ):
            if image.format not in LOSSLESS_FORMATS or _lossy_tiff(image):
                raise MaskError(
                    f"The object mask {label} is a {image.format or 'lossy'} file; object ids need a "
                    "lossless format such as PNG."
                )
            return _decode(image, size, label)
    except MaskError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is the same user error
        raise MaskError(
            f"The object mask {label} is not a readable single-channel PNG of object ids."
        ) from err


def _lossy_tiff(image: Image.Image) -> bool:
    return image.format == "TIFF" and "jpeg" in str(image.info.get("compression", "")).lower()


def _decode(image: Image.Image, size: tuple[int, int], label: str) -> np.ndarray:
    limit = limits.MAX_IMAGE_PIXELS.value()
    if image.width * image.height > limit:
        raise MaskError(
            f"The object mask {label} is {image.width}x{image.height} pixels, more than the limit of {limit}."
        )
    if image.mode not in _MODE_DTYPES:
        raise MaskError(
            f"The object mask {label} has mode {image.mode}; it must be one channel of object ids."
        )
    if (image.height, image.width) != tuple(size):
        raise MaskError(
            f"The object mask {label} is {image.width}x{image.height}, the image {size[1]}x{size[0]}."
        )
    return np.asarray(image).astype(_MODE_DTYPES[image.mode], copy=False)


def object_ids(
    array: np.ndarray, vocab: Vocabulary, size: tuple[int, int], label: str = "given"
) -> np.ndarray:
    """(H, W) int64 object ids with -1 for "no object", by the rules of the module docstring."""
    array = np.asarray(array)
    if array.ndim == 3:
        raise MaskError(
            f"The object mask {label} has {array.shape[2]} channels; it must be one channel of object ids."
        )
    if array.shape != tuple(size):
        shape = "x".join(str(n) for n in reversed(array.shape)) if array.ndim else "a scalar"
        raise MaskError(f"The object mask {label} is {shape}, the image {size[1]}x{size[0]}.")
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise MaskError(f"The object mask {label} must hold integer object ids, not {array.dtype}.")
    ids = array.astype(np.int64)
    if array.dtype in NO_OBJECT:
        ids[array == NO_OBJECT[array.dtype]] = -1
    elif np.issubdtype(array.dtype, np.signedinteger) and (ids < -1).any():
        raise MaskError(
            f"The object mask {label} holds the negative id {int(ids.min())}; ids start at 0, and only -1 "
            "means no object."
        )
    if ids.max(initial=-1) >= len(vocab.objects):
        raise MaskError(
            f"The object mask {label} holds id {int(ids.max())}, but the vocabulary has "
            f"{len(vocab.objects)} objects."
        )
    return ids


def load_object_mask(
    mask: str | os.PathLike | bytes | Image.Image | np.ndarray, vocab: Vocabulary, size: tuple[int, int]
) -> np.ndarray:
    """An (H, W) int64 object-id map with -1 for "no object", from a file, bytes, PIL image or array.

    ``size`` is the image's (H, W). See the module docstring for which value means "no object".
    """
    if not isinstance(mask, str | os.PathLike | bytes | bytearray | Image.Image):
        return object_ids(np.asarray(mask), vocab, size)
    label = repr(str(mask)) if isinstance(mask, str | os.PathLike) else "given"
    return object_ids(read_object_mask(mask, size, label), vocab, size, label)
