"""Training augmentations on (image, part map, object map) triples, with NumPy and PIL only (no torchvision).

Each op is a small class built from one recipe entry (``{op: hflip, p: 0.5}``) and called with a NumPy
``Generator``; the data module seeds that generator from the sample's position in the run, so augmentation is
identical across worker counts, devices and resumes. Label maps use -1 for "no label" and are resampled with
nearest neighbour so ids never blend.

Ops and the recipes that use them:

* ``resize``: fixed size, aspect not kept (OV-PARTS/PartCLIPSeg: the processor's 352x352).
* ``resize_shortest_edge``: detectron2's ResizeShortestEdge (CAT-Seg 384, PartCATSeg 384 max 768).
* ``random_crop``: a random window, clipped to the image (detectron2 RandomCrop "absolute").
* ``random_resized_crop``: a random area/aspect window resized to a fixed size.
* ``hflip``: horizontal flip with probability ``p``.
* ``color_jitter``: brightness / contrast / saturation / hue factors, random order.
* ``color_aug_ssd``: detectron2's ColorAugSSDTransform (brightness delta 32, contrast and saturation
  0.5-1.5, hue delta 18, each with probability 0.5).
* ``pad``: bottom/right padding to a size (image value ``fill``, labels -1), detectron2's size divisibility.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError


@dataclass
class Triple:
    """One training sample being augmented: HxWx3 uint8 image and HxW int64 label maps (-1 = none)."""

    image: np.ndarray
    parts: np.ndarray
    objects: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


Op = Callable[[Triple, np.random.Generator], Triple]


def _pair(value: Any) -> tuple[int, int]:
    """An int or [height, width] -> (height, width)."""
    if isinstance(value, int | float):
        return int(value), int(value)
    height, width = value
    return int(height), int(width)


def resize_triple(triple: Triple, size: tuple[int, int]) -> Triple:
    """Bilinear for the image, nearest for the labels; ``size`` is (height, width)."""
    if triple.size == tuple(size):
        return triple
    height, width = size
    image = np.asarray(Image.fromarray(triple.image).resize((width, height), Image.BILINEAR))

    def labels(values: np.ndarray) -> np.ndarray:
        # int32 PIL images hold every id, -1 included, and resize with nearest without rounding surprises.
        resized = Image.fromarray(values.astype(np.int32)).resize((width, height), Image.NEAREST)
        return np.asarray(resized).astype(np.int64)

    return Triple(image, labels(triple.parts), labels(triple.objects))


def crop_triple(triple: Triple, top: int, left: int, height: int, width: int) -> Triple:
    window = (slice(top, top + height), slice(left, left + width))
    return Triple(triple.image[window], triple.parts[window], triple.objects[window])


class Resize:
    def __init__(self, size: Any) -> None:
        self.size = _pair(size)

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        return resize_triple(triple, self.size)


class ResizeShortestEdge:
    """Shortest side to ``size`` (one of a list, chosen at random), longest side capped at ``max_size``."""

    def __init__(self, size: int | list[int], max_size: int = 1333) -> None:
        self.sizes = [int(s) for s in (size if isinstance(size, list | tuple) else [size])]
        self.max_size = int(max_size)

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        target = self.sizes[int(rng.integers(len(self.sizes)))] if len(self.sizes) > 1 else self.sizes[0]
        height, width = triple.size
        scale = target / min(height, width)
        if max(height, width) * scale > self.max_size:
            scale = self.max_size / max(height, width)
        new = (int(height * scale + 0.5), int(width * scale + 0.5))
        return resize_triple(triple, new)


class RandomCrop:
    def __init__(self, size: Any) -> None:
        self.size = _pair(size)

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        height, width = triple.size
        crop_h, crop_w = min(self.size[0], height), min(self.size[1], width)
        top = int(rng.integers(height - crop_h + 1))
        left = int(rng.integers(width - crop_w + 1))
        return crop_triple(triple, top, left, crop_h, crop_w)


class RandomResizedCrop:
    """A window of random area (``scale``) and aspect (``ratio``) resized to ``size``; 10 tries, then centre."""

    def __init__(
        self, size: Any, scale: tuple[float, float] = (0.5, 1.0), ratio: tuple[float, float] = (0.75, 4 / 3)
    ) -> None:
        self.size = _pair(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.log_ratio = (np.log(ratio[0]), np.log(ratio[1]))

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        height, width = triple.size
        area = height * width
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = float(np.exp(rng.uniform(*self.log_ratio)))
            crop_w = int(round(np.sqrt(target * aspect)))
            crop_h = int(round(np.sqrt(target / aspect)))
            if 0 < crop_w <= width and 0 < crop_h <= height:
                top = int(rng.integers(height - crop_h + 1))
                left = int(rng.integers(width - crop_w + 1))
                return resize_triple(crop_triple(triple, top, left, crop_h, crop_w), self.size)
        side = min(height, width)
        centre = crop_triple(triple, (height - side) // 2, (width - side) // 2, side, side)
        return resize_triple(centre, self.size)


class HorizontalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        if rng.random() >= self.p:
            return triple
        return Triple(
            np.ascontiguousarray(triple.image[:, ::-1]),
            np.ascontiguousarray(triple.parts[:, ::-1]),
            np.ascontiguousarray(triple.objects[:, ::-1]),
        )


def _grey(image: np.ndarray) -> np.ndarray:
    return image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114


def _shift_hue(image: np.ndarray, delta: float) -> np.ndarray:
    """Hue rotated by ``delta`` in [−0.5, 0.5] turns, through PIL's HSV (hue stored as 0-255)."""
    hsv = np.asarray(Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(delta * 255))) % 256).astype(np.uint8)
    return np.asarray(Image.fromarray(hsv, mode="HSV").convert("RGB")).astype(np.float32)


class ColorJitter:
    """torchvision-style jitter: each factor drawn in [1-x, 1+x] (hue in [-h, h]), ops in random order."""

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
    ) -> None:
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        image = triple.image.astype(np.float32)
        for index in rng.permutation(4):
            if index == 0 and self.brightness:
                image = image * rng.uniform(1 - self.brightness, 1 + self.brightness)
            elif index == 1 and self.contrast:
                mean = _grey(np.clip(image, 0, 255)).mean()
                image = (image - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
            elif index == 2 and self.saturation:
                grey = _grey(image)[..., None]
                image = (image - grey) * rng.uniform(1 - self.saturation, 1 + self.saturation) + grey
            elif index == 3 and self.hue:
                image = _shift_hue(image, rng.uniform(-self.hue, self.hue))
            image = np.clip(image, 0, 255)
        return Triple(image.round().astype(np.uint8), triple.parts, triple.objects)


class ColorAugSSD:
    """detectron2's ColorAugSSDTransform (SSD photometric distortion), as CAT-Seg and PartCATSeg train with.

    Brightness +-32, then contrast either first or last, saturation x[0.5, 1.5] and hue +-18 degrees (of 180);
    each step happens with probability 0.5. detectron2 works in BGR with OpenCV's HSV; here the same
    distortions are applied in RGB, which draws from the same distribution of colour changes.
    """

    def __init__(
        self,
        brightness_delta: int = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: int = 18,
    ) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_range = contrast_range
        self.saturation_range = saturation_range
        self.hue_delta = hue_delta

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        image = triple.image.astype(np.float32)
        if rng.random() < 0.5:
            image = image + rng.uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = rng.random() < 0.5
        if contrast_first and rng.random() < 0.5:
            image = image * rng.uniform(*self.contrast_range)
        if rng.random() < 0.5:
            grey = _grey(np.clip(image, 0, 255))[..., None]
            image = (image - grey) * rng.uniform(*self.saturation_range) + grey
        if rng.random() < 0.5:
            image = _shift_hue(image, rng.uniform(-self.hue_delta, self.hue_delta) / 180.0)
        if not contrast_first and rng.random() < 0.5:
            image = image * rng.uniform(*self.contrast_range)
        return Triple(np.clip(image, 0, 255).round().astype(np.uint8), triple.parts, triple.objects)


class Pad:
    """Pad bottom/right to at least ``size`` (image ``fill``, labels -1 so padding is never supervised)."""

    def __init__(self, size: Any, fill: int = 0) -> None:
        self.size = _pair(size)
        self.fill = int(fill)

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        height, width = triple.size
        pad_h, pad_w = max(0, self.size[0] - height), max(0, self.size[1] - width)
        if not pad_h and not pad_w:
            return triple
        image = np.pad(triple.image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=self.fill)
        labels = {"pad_width": ((0, pad_h), (0, pad_w)), "constant_values": -1}
        return Triple(image, np.pad(triple.parts, **labels), np.pad(triple.objects, **labels))


OPS: dict[str, type] = {
    "resize": Resize,
    "resize_shortest_edge": ResizeShortestEdge,
    "random_crop": RandomCrop,
    "random_resized_crop": RandomResizedCrop,
    "hflip": HorizontalFlip,
    "color_jitter": ColorJitter,
    "color_aug_ssd": ColorAugSSD,
    "pad": Pad,
}


def build_op(spec: dict[str, Any]) -> Op:
    """One op from its recipe entry; bad names and arguments are refused with one sentence."""
    if not isinstance(spec, dict) or "op" not in spec:
        raise ConfigError(f"Each data.augment entry needs an 'op' key, got {spec!r}.")
    args = {k: v for k, v in spec.items() if k != "op"}
    name = spec["op"]
    if name not in OPS:
        raise ConfigError(f"Unknown augmentation {name!r}; choose from {', '.join(OPS)}.")
    try:
        return OPS[name](**args)
    except TypeError as err:
        raise ConfigError(f"Bad arguments for augmentation {name!r}: {err}.") from err


class Compose:
    """The recipe's ops in order."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.ops = [build_op(spec) for spec in specs]

    def __call__(self, triple: Triple, rng: np.random.Generator) -> Triple:
        for op in self.ops:
            triple = op(triple, rng)
        return triple
