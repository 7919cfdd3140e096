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

from ..data import coco_rle
from ..errors import ImageError, MaskError, VocabularyError
from ..inference import SegmentationResult, Segmenter
from ..models.base import PartSegModel
from ..object_masks import read_object_mask
from ..validation import check_background_threshold
from ..visualize import no_part_value
from ..vocabulary import Vocabulary
from .budget import Plan, pixel_weights, plan_request, scale_labels
from .limits import Gate, Limits, TooLarge, check_image_bytes, image_header_size

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

    def check(self, request: Request) -> Plan:
        """Everything that can be refused without decoding, so a bad request never takes a model slot: the
        options, the upload's size, and the work and memory the request would take (from the header)."""
        served = self.served(request.model)
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
        check_background_threshold(request.background_threshold)
        size = image_header_size(request.image, self.limits)
        return plan_request(size, len(request.vocabulary), served.model, len(request.image), self.limits)

    def run(self, request: Request, plan: Plan | None = None) -> tuple[Image.Image, SegmentationResult]:
        """The CPU work of a checked request: decode the image (and mask), resize both to the plan's working
        size, run the model. The result is at the working size; ``result_payload`` scales it back."""
        plan = plan or self.check(request)
        image = check_image_bytes(request.image, self.limits)
        size = (image.height, image.width)
        if size != plan.size:  # the header lied about the size it decodes to
            raise ImageError("The image decodes to another size than its header declares.")
        mask = None
        if request.object_mask is not None:
            mask = decode_mask_png(request.object_mask, self.limits, size)
            if plan.resized:
                mask = scale_labels(mask, plan.working, mask.dtype)
        elif request.object_name is not None:
            index = request.vocabulary.objects.index(" ".join(request.object_name.split()))
            mask = np.full(plan.working, index, dtype=np.int64)
        if plan.resized:
            image = image.resize((plan.working[1], plan.working[0]), resample=Image.BILINEAR)
        model = self.served(request.model).model
        segmenter = Segmenter(model, background_threshold=request.background_threshold, keep_scores=False)
        result = segmenter(image, request.vocabulary, object_mask=mask)
        result.extras["image_size"] = plan.size  # result_payload scales the label map back to it
        return image, result

    def submit(self, request: Request, finish: Callable[[Image.Image, SegmentationResult], T]) -> Future[T]:
        """Check ``request`` and queue it; ``finish`` (e.g. encoding the answer) runs on the model thread too."""
        plan = self.check(request)
        return self.gate.submit(lambda: finish(*self.run(request, plan)))

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
    result: SegmentationResult,
    model: str,
    label_format: str = "png",
    elapsed_ms: float | None = None,
    size: tuple[int, int] | None = None,
) -> dict:
    """The JSON answer: parts present with areas and scores, and the label map in the asked format.

    ``size`` (height, width) is the uploaded image's when the request ran at a smaller working size: the
    label map is scaled back to it by nearest neighbour, and pixel counts are those of the scaled map.
    ``png``: the part ids as an 8-bit PNG with 255 = no part, or 16-bit with 65535 = no part for
    vocabularies of 255 parts or more, base64. ``coco_rle``: one COCO RLE per part present, so each part's
    mask decodes with pycocotools alone.
    """
    if label_format not in LABEL_FORMATS:
        raise VocabularyError(
            f"Unknown label format {label_format!r}; choose from {', '.join(LABEL_FORMATS)}."
        )
    working = result.part_map.shape
    height, width = size or result.extras.get("image_size") or working
    parts, no_part_share = (
        (result.summary(), float((result.part_map < 0).mean()))
        if (height, width) == working
        else weighted_summary(result, (height, width))
    )
    payload: dict = {
        "model": model,
        "protocol": result.protocol,
        "width": int(width),
        "height": int(height),
        "vocabulary": result.vocabulary.format(),
        "no_part_share": no_part_share,
        "parts": parts,
    }
    if label_format == "none":
        pass
    else:
        labels, no_part = label_array(result, (height, width))
        if label_format == "png":
            payload["label_map"] = {
                "format": "png",
                "no_part": no_part,
                "data": base64.b64encode(png_bytes(Image.fromarray(labels))).decode("ascii"),
            }
        else:
            payload["label_map"] = {
                "format": "coco_rle",
                "size": [int(height), int(width)],
                "segments": [
                    {"id": row["id"], "name": row["name"], "rle": coco_rle.encode(labels == row["id"])}
                    for row in payload["parts"]
                ],
            }
    if elapsed_ms is not None:
        payload["elapsed_ms"] = round(elapsed_ms, 2)
    return payload


def label_array(result: SegmentationResult, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """The part-id map at ``size`` in the PNG's dtype (uint8, or uint16 from 255 parts on) and its
    no-part value; built in the compact dtype, so a large upload costs one or two bytes a pixel here."""
    no_part = no_part_value(len(result.vocabulary))
    dtype = np.uint8 if no_part == 255 else np.uint16
    working = np.where(result.part_map >= 0, result.part_map, no_part)
    return scale_labels(working, size, dtype), no_part


def weighted_summary(result: SegmentationResult, size: tuple[int, int]) -> tuple[list[dict], float]:
    """``result.summary()`` and the no-part share as they are for the label map scaled to ``size``: each
    working pixel counts for the full-size pixels it stands for, so the numbers match the map exactly."""
    weights = pixel_weights(result.part_map.shape, size)
    valid = result.part_map >= 0
    ids = result.part_map[valid]
    counts = np.bincount(ids, weights=weights[valid], minlength=len(result.vocabulary))
    sums = np.bincount(
        ids, weights=weights[valid] * result.confidence[valid], minlength=len(result.vocabulary)
    )
    total = size[0] * size[1]
    rows = []
    for pid in np.flatnonzero(counts).tolist():
        part = result.vocabulary.parts[pid]
        count = int(round(counts[pid]))
        rows.append(
            {
                "id": pid,
                "name": part.name,
                "object": part.object,
                "part": part.part,
                "pixels": count,
                "share": count / total,
                "mean_score": float(sums[pid] / counts[pid]),
            }
        )
    return rows, 1.0 - float(counts.sum()) / total
