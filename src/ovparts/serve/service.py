"""The one place that runs models for the web page and the API, so both share the loaded models, the text
embedding cache inside each model, and the limits.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from PIL import Image

from ..errors import MaskError, VocabularyError
from ..inference import SegmentationResult, Segmenter
from ..models.base import PartSegModel
from ..object_masks import read_object_mask
from ..visualize import label_png
from ..vocabulary import Vocabulary
from . import rle
from .limits import Gate, Limits, TooLarge, check_image_bytes

LABEL_FORMATS = ("png", "coco_rle", "none")
PROTOCOLS = ("pred_all", "oracle_obj")
T = TypeVar("T")


@dataclass
class ServedModel:
    """A loaded model and where it came from, for ``/v1/models`` and the page's header."""

    name: str
    model: PartSegModel
    weights: str = "default"
    details: dict = field(default_factory=dict)


@dataclass
class Request:
    """One segmentation request, whichever door it came through; the image is still the uploaded bytes, so
    that decoding, like the model, runs on the gate's threads and counts against the limits."""

    image: bytes
    vocabulary: Vocabulary
    model: str | None = None
    object_name: str | None = None  # Oracle-Obj with the whole image as this object
    object_mask: bytes | None = None  # Oracle-Obj with a PNG of object ids
    background_threshold: float | None = None


class SegmentService:
    """Loaded models plus the gate; ``submit`` / ``segment`` are what both front ends call."""

    def __init__(self, models: list[ServedModel], limits: Limits | None = None) -> None:
        if not models:
            raise ValueError("A server needs at least one model.")
        self.models = {served.name: served for served in models}
        self.default_model = models[0].name
        self.limits = limits or Limits()
        self.gate = Gate(self.limits)

    def served(self, name: str | None) -> ServedModel:
        """The loaded model called ``name`` (the first one when None), or a 422 naming what is loaded."""
        key = name or self.default_model
        if key not in self.models:
            raise VocabularyError(
                f"The model {key!r} is not loaded on this server; it runs {', '.join(self.models)}."
            )
        return self.models[key]

    def check(self, request: Request) -> None:
        """Everything that can be refused without decoding, so a bad request never takes a model slot."""
        self.served(request.model)
        limit = self.limits.max_upload_bytes
        if len(request.image) > limit:
            raise TooLarge(f"The image is {len(request.image)} bytes, more than the limit of {limit} bytes.")
        if request.object_name is not None and request.object_mask is not None:
            raise MaskError("Give either an object name or an object mask for Oracle-Obj, not both.")
        if request.object_name is not None:
            name = " ".join(request.object_name.split())
            if name not in request.vocabulary.objects:
                objects = ", ".join(request.vocabulary.objects[:12])
                raise MaskError(f"The object {name!r} is not in the vocabulary ({objects}).")
        threshold = request.background_threshold
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise VocabularyError(f"The background threshold must lie in [0, 1], got {threshold}.")

    def run(self, request: Request) -> tuple[Image.Image, SegmentationResult]:
        """The CPU work of a checked request: decode the image (and mask), run the model."""
        image = check_image_bytes(request.image, self.limits)
        size = (image.height, image.width)
        mask = None
        if request.object_mask is not None:
            mask = decode_mask_png(request.object_mask, self.limits, size)
        elif request.object_name is not None:
            index = request.vocabulary.objects.index(" ".join(request.object_name.split()))
            mask = np.full(size, index, dtype=np.int64)
        model = self.served(request.model).model
        segmenter = Segmenter(model, background_threshold=request.background_threshold, keep_scores=False)
        return image, segmenter(image, request.vocabulary, object_mask=mask)

    def submit(self, request: Request, finish: Callable[[Image.Image, SegmentationResult], T]) -> Future[T]:
        """Check ``request`` and queue it; ``finish`` (e.g. encoding the answer) runs on the model thread too."""
        self.check(request)
        return self.gate.submit(lambda: finish(*self.run(request)))

    def segment(self, request: Request) -> tuple[Image.Image, SegmentationResult]:
        """Run one request synchronously within the limits (the web page's path)."""
        return self.gate.wait(self.submit(request, lambda image, result: (image, result)))

    async def segment_async(
        self, request: Request, finish: Callable[[Image.Image, SegmentationResult], T]
    ) -> T:
        """Run one request within the limits without blocking the event loop (the API's path)."""
        return await self.gate.wait_async(self.submit(request, finish))


def decode_mask_png(data: bytes, limits: Limits, size: tuple[int, int]) -> np.ndarray:
    """An object-id mask from PNG bytes, read by the library's reader (the CLI's rules: header first)."""
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(
            f"The object mask is {len(data)} bytes, more than the limit of {limits.max_upload_bytes} bytes."
        )
    return read_object_mask(data, size)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def result_payload(
    result: SegmentationResult, model: str, label_format: str = "png", elapsed_ms: float | None = None
) -> dict:
    """The JSON answer: parts present with areas and scores, and the label map in the asked format.

    ``png``: the part ids as an 8-bit PNG (16-bit beyond 255 parts), no part = 255 (or 65535), base64.
    ``coco_rle``: one COCO RLE per part present, so each part's mask decodes with pycocotools alone.
    """
    if label_format not in LABEL_FORMATS:
        raise VocabularyError(
            f"Unknown label format {label_format!r}; choose from {', '.join(LABEL_FORMATS)}."
        )
    height, width = result.part_map.shape
    payload: dict = {
        "model": model,
        "protocol": result.protocol,
        "width": int(width),
        "height": int(height),
        "vocabulary": result.vocabulary.format(),
        "no_part_share": float((result.part_map < 0).mean()),
        "parts": result.summary(),
    }
    if label_format == "png":
        no_part = 255 if result.part_map.max(initial=-1) < 255 else 65535
        payload["label_map"] = {
            "format": "png",
            "no_part": no_part,
            "data": base64.b64encode(png_bytes(label_png(result.part_map))).decode("ascii"),
        }
    elif label_format == "coco_rle":
        payload["label_map"] = {
            "format": "coco_rle",
            "size": [int(height), int(width)],
            "segments": [
                {"id": row["id"], "name": row["name"], "rle": rle.encode(result.part_map == row["id"])}
                for row in payload["parts"]
            ],
        }
    if elapsed_ms is not None:
        payload["elapsed_ms"] = round(elapsed_ms, 2)
    return payload
