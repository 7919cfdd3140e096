"""What one request will cost, worked out from the image header and the vocabulary before any work runs.

A request's memory and time grow with pixels x parts: every part's score map is upsampled to the label
map's resolution. The server therefore segments at a *working resolution* (large images are resized
first and the label map is scaled back with nearest-neighbour, which costs one or two bytes a pixel),
bounds working pixels x parts, and refuses a request whose estimated peak memory passes the limit. All
three checks need only the header's size, so a refusal costs no decoding and takes no model slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..inference import UPSAMPLE_CHUNK, segmenter_defaults, window_starts
from ..models.base import PartSegModel
from .limits import Limits, TooLarge

# Bytes per pixel of the upload: the decoded image and its RGB copy, the label map and its PNG encoding.
FULL_BYTES_PER_PIXEL = 16
# Bytes per working pixel independent of the parts: the resized image, best scores, labels, object ids,
# confidence and the temporaries of their updates (int64 and float32 maps, a dozen of them).
WORK_BYTES_PER_PIXEL = 160
# Bytes per working pixel and part in one chunk of parts: upsampled scores, their activation, masked copy.
WORK_BYTES_PER_PIXEL_PART = 16
# Bytes per network-input pixel and part: the per-class scores the network returns (float32) and as much
# again for the decoder's activations (models decode classes in chunks, so these do not grow further).
MODEL_BYTES_PER_PIXEL_PART = 8


@dataclass(frozen=True)
class Plan:
    """How a request will run: the upload's size, the size it is segmented at, and its estimated cost."""

    size: tuple[int, int]  # (height, width) of the uploaded image
    working: tuple[int, int]  # (height, width) the model's scores are upsampled to
    parts: int
    bytes: int  # estimated peak memory of the request

    @property
    def resized(self) -> bool:
        return self.working != self.size


def working_size(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) with at most ``max_pixels`` pixels and the same aspect; unchanged when it fits."""
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    new_height = min(height, max(1, math.floor(height * scale)))
    new_width = min(width, max(1, math.floor(width * scale)), max(1, max_pixels // new_height))
    return new_height, new_width


def model_pixels(model: PartSegModel) -> int:
    """Network-input pixels one image costs the model: its input size, or for sliding-window inference
    (CAT-Seg) every window, the global view, and the canvas the windows are folded back onto."""
    height, width = model.preprocess.size
    defaults = segmenter_defaults(model)
    if not defaults.sliding_window:
        return height * width
    canvas = int(defaults.sliding_canvas)
    overlap = float(defaults.sliding_overlap)
    windows = len(window_starts(canvas, height, overlap)) * len(window_starts(canvas, width, overlap))
    return (windows + 1) * height * width + canvas * canvas


def estimate_bytes(
    size: tuple[int, int], working: tuple[int, int], parts: int, network_pixels: int, encoded: int
) -> int:
    """Estimated peak memory of one request; an upper bound for the post-processing, an allowance for
    the network (its real peak depends on the architecture)."""
    full = size[0] * size[1]
    work = working[0] * working[1]
    chunk = min(parts, UPSAMPLE_CHUNK)
    return (
        2 * encoded
        + full * FULL_BYTES_PER_PIXEL
        + work * (WORK_BYTES_PER_PIXEL + WORK_BYTES_PER_PIXEL_PART * chunk)
        + parts * network_pixels * MODEL_BYTES_PER_PIXEL_PART
    )


def plan_request(
    size: tuple[int, int], parts: int, model: PartSegModel, encoded: int, limits: Limits
) -> Plan:
    """The plan for an image of ``size`` (height, width) and ``parts`` parts, or ``TooLarge`` (413)."""
    working = working_size(*size, limits.working_pixels)
    work = working[0] * working[1] * parts
    if work > limits.max_pixel_parts:
        raise TooLarge(
            f"The request asks for {working[1]}x{working[0]} working pixels times {parts} parts = {work}, "
            f"more than the limit of {limits.max_pixel_parts}; send fewer parts or a smaller image."
        )
    cost = estimate_bytes(size, working, parts, model_pixels(model), encoded)
    if cost > limits.max_request_bytes:
        raise TooLarge(
            f"The request would need about {mib(cost)} MiB ({size[1]}x{size[0]} image, {parts} parts), "
            f"more than the limit of {mib(limits.max_request_bytes)} MiB; send fewer parts or a smaller image."
        )
    return Plan(size, working, parts, cost)


def mib(count: int) -> int:
    return math.ceil(count / 2**20)


def nearest_rows(full: int, working: int) -> np.ndarray:
    """For each of ``full`` output rows (or columns), the working row it takes its label from."""
    return (np.arange(full, dtype=np.int64) * working) // full


def scale_labels(labels: np.ndarray, size: tuple[int, int], dtype: type) -> np.ndarray:
    """``labels`` (working size) at ``size`` by nearest neighbour, built directly in the compact ``dtype``."""
    compact = labels.astype(dtype, copy=False)
    if labels.shape == size:
        return compact
    rows = nearest_rows(size[0], labels.shape[0])
    cols = nearest_rows(size[1], labels.shape[1])
    return compact[rows[:, None], cols[None, :]]


def pixel_weights(working: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """How many full-size pixels each working pixel stands for under :func:`scale_labels`."""
    rows = np.bincount(nearest_rows(size[0], working[0]), minlength=working[0])
    cols = np.bincount(nearest_rows(size[1], working[1]), minlength=working[1])
    return np.outer(rows, cols)
