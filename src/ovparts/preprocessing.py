"""Test-time image preparation steps shared by the Segmenter and the models.

The official evaluations of CAT-Seg and PartCATSeg run on detectron2 data: the photo is first resized so that its
short edge reaches a target length (long edge capped), as a uint8 PIL image with bilinear resampling; the
normalised float image is then zero-padded to a multiple of a divisor and bilinearly interpolated by torch
(``align_corners=False``, no antialiasing) to each encoder's input size. These helpers implement those steps
with plain PIL / torch calls so the Segmenter and the models agree on one definition of each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import ConfigError


def check_chain(short_edge: int | None, max_size: int | None, divisor: int) -> None:
    """Refuse test-time chain settings that cannot describe an image size, in one sentence."""
    for name, value in (("test_short_edge", short_edge), ("test_max_size", max_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive number of pixels or null, not {value!r}.")
    if not isinstance(divisor, int) or divisor < 0:
        raise ConfigError(f"size_divisibility must be 0 (no padding) or a positive integer, not {divisor!r}.")


def shortest_edge_size(height: int, width: int, short_edge: int, max_size: int | None) -> tuple[int, int]:
    """(new_height, new_width): the short edge scaled to ``short_edge``, the long edge capped at ``max_size``.

    Rounded half up, as detectron2's ``ResizeShortestEdge`` does (451x300 -> 962x640; capped at 768 ->
    768x511).
    """
    scale = short_edge / min(height, width)
    new_h, new_w = (
        (float(short_edge), scale * width) if height < width else (scale * height, float(short_edge))
    )
    if max_size is not None and max(new_h, new_w) > max_size:
        cap = max_size / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_shortest_edge(image: Image.Image, short_edge: int, max_size: int | None) -> Image.Image:
    """The uint8 RGB image resized with PIL bilinear to :func:`shortest_edge_size`."""
    new_h, new_w = shortest_edge_size(image.height, image.width, short_edge, max_size)
    if (new_h, new_w) == (image.height, image.width):
        return image
    return image.resize((new_w, new_h), resample=Image.BILINEAR)


def image_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1] from an RGB PIL image."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(pixels - mean) / std`` per channel; mean and std in [0, 1] units."""
    m = pixels.new_tensor(tuple(mean)).view(1, 3, 1, 1)
    s = pixels.new_tensor(tuple(std)).view(1, 3, 1, 1)
    return (pixels - m) / s


def interpolate(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize, ``align_corners=False`` and no antialiasing (torch's default, as the official code)."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    return F.interpolate(pixels, size=tuple(size), mode="bilinear", align_corners=False)


def pad_to_multiple(pixels: torch.Tensor, divisor: int) -> torch.Tensor:
    """Zero-pad bottom and right so both sides are multiples of ``divisor`` (detectron2's ``ImageList``).

    Zero in *normalised* units, i.e. the mean colour of that normalisation: an encoder with its own mean/std
    must pad after re-normalising, not before.
    """
    if divisor <= 1:
        return pixels
    height, width = pixels.shape[-2:]
    pad_h, pad_w = -height % divisor, -width % divisor
    if pad_h == 0 and pad_w == 0:
        return pixels
    return F.pad(pixels, (0, pad_w, 0, pad_h), value=0.0)


def encoder_input(pixels: torch.Tensor, size: tuple[int, int] | None, divisor: int) -> torch.Tensor:
    """Normalised pixels padded to ``divisor`` and then interpolated to ``size`` (``None``: padding only)."""
    padded = pad_to_multiple(pixels, divisor)
    return padded if size is None else interpolate(padded, size)


__all__ = [
    "check_chain",
    "encoder_input",
    "image_tensor",
    "interpolate",
    "normalize",
    "pad_to_multiple",
    "resize_shortest_edge",
    "shortest_edge_size",
]
