"""Segmenter: image + vocabulary in, label maps out, for any ovparts model.

Pre-processing follows the checkpoint's convention (``model.preprocess``); logits are brought back to the
original resolution and reduced to labels class-chunk by class-chunk, so a 234-class vocabulary on a large photo
never holds a full P x H x W float tensor unless the caller asks for the scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import VocabularyError
from .imageio import ImageLike, load_image
from .models.base import PartLogits, PartSegModel, SegmenterDefaults
from .models.stages import stage
from .object_masks import load_object_mask
from .preprocessing import image_tensor, interpolate, normalize, resize_shortest_edge
from .runtime.precision import autocast, check_precision
from .validation import check_background_threshold
from .vocabulary import Vocabulary

# Above this many P x H x W elements the full score tensor is not kept unless asked for (256 MB in float32).
AUTO_KEEP_SCORES_LIMIT = 64_000_000
UPSAMPLE_CHUNK = 16


@dataclass(frozen=True)
class SlidingWindow:
    """CAT-Seg's evaluation (official ``CATSeg.inference_sliding_window``; docs/catseg.md): the image resized to ``canvas`` x ``canvas`` (aspect
    not kept), covered by ``window`` x ``window`` crops every ``window * (1 - overlap)`` pixels, plus a
    global view of the whole image at the window size. Probabilities are averaged where windows overlap,
    then 50/50 with the upsampled global view. 640 / 384 / 0.333 gives the official 2x2 windows + 1 view.
    ``window=None`` uses the model's input size; the model resizes windows of another size to its input
    (official ViT-L: 384 windows fed to CLIP at 336).
    """

    canvas: int = 640
    overlap: float = 0.333
    global_view: bool = True
    window: int | None = None


def window_starts(canvas: int, window: int, overlap: float) -> list[int]:
    """Window offsets along one side; the last window is flush with the far edge."""
    if window >= canvas:
        return [0]
    stride = max(int(window * (1 - overlap)), 1)
    starts = list(range(0, canvas - window + 1, stride))
    if starts[-1] != canvas - window:
        starts.append(canvas - window)
    return starts


def sigmoid_logits(logits: PartLogits) -> PartLogits:
    """The same outputs as probabilities at the network's resolution (activation "identity").

    For checkpoints whose official post-processing applies the sigmoid before the resize to the photo.
    """
    return _as_probabilities(logits, lambda tensor: torch.sigmoid(tensor.float()))


def _as_probabilities(logits: PartLogits, convert: Callable[[torch.Tensor], torch.Tensor]) -> PartLogits:
    """``logits`` with every score tensor (parts, background, objects, object background) passed through
    ``convert``, which turns it into probabilities (activation "identity"); absent channels stay absent."""

    def apply(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else convert(tensor)

    return PartLogits(
        parts=apply(logits.parts),
        background=apply(logits.background),
        objects=apply(logits.objects),
        activation="identity",
        extras=logits.extras,
        object_background=apply(logits.object_background),
    )


@dataclass
class SegmentationResult:
    """Label maps at the input image's size (after EXIF rotation)."""

    part_map: np.ndarray  # (H, W) int64, -1 = no part, else an index into vocab.parts
    object_map: np.ndarray  # (H, W) int64, -1 = background, else an index into vocab.objects
    confidence: np.ndarray  # (H, W) float32 probability of the chosen label (background included)
    part_scores: np.ndarray | None  # (P, H, W) float32 probabilities, or None when not kept
    vocabulary: Vocabulary
    protocol: str  # "pred_all" or "oracle_obj"
    extras: dict = field(default_factory=dict)

    def summary(self) -> list[dict]:
        """Per part present: id, name, object, pixel share and mean probability over its pixels."""
        total = self.part_map.size
        ids, counts = np.unique(self.part_map[self.part_map >= 0], return_counts=True)
        sums = np.bincount(self.part_map[self.part_map >= 0], weights=self.confidence[self.part_map >= 0])
        rows = []
        for pid, count in zip(ids.tolist(), counts.tolist(), strict=True):
            part = self.vocabulary.parts[pid]
            rows.append(
                {
                    "id": pid,
                    "name": part.name,
                    "object": part.object,
                    "part": part.part,
                    "pixels": int(count),
                    "share": count / total,
                    "mean_score": float(sums[pid] / count),
                }
            )
        return rows


def segmenter_defaults(model: torch.nn.Module) -> SegmenterDefaults:
    """The model's declared Segmenter options; a stand-in model outside the contract gets the defaults."""
    defaults = getattr(model, "segmenter_defaults", None)
    return defaults if isinstance(defaults, SegmenterDefaults) else SegmenterDefaults()


class Segmenter:
    """Runs a model on images with a vocabulary; Pred-All without an object mask, Oracle-Obj with one.

    Parameters
    ----------
    background_threshold:
        For models without a background channel: a pixel is background where no part's probability
        reaches it. Defaults to the model's (``model.segmenter_defaults``; 0.5).
    keep_scores:
        Keep the (P, H, W) probabilities in the result; ``None`` keeps them while they stay small.
    sliding_window:
        A :class:`SlidingWindow`, ``True`` for the model's (``model.segmenter_defaults``: canvas, overlap,
        window size), ``False`` for one resized view; ``None`` follows the model's choice (CAT-Seg: on).
    precision:
        ``"fp32"`` (default), ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA): the network runs under autocast
        in that precision; text embeddings and the post-processing stay in fp32.
    compile:
        Compile the model's image encoders and per-class head in place with ``torch.compile`` (inductor,
        :func:`ovparts.runtime.compiling.compile_model`). The first image pays the compile time; later images reuse
        the graphs (every image is resized to the model's input), and so, after a recompile or two, do
        vocabularies of other sizes.
    """

    def __init__(
        self,
        model: PartSegModel,
        device: str | torch.device | None = None,
        background_threshold: float | None = None,
        keep_scores: bool | None = None,
        sliding_window: SlidingWindow | bool | None = None,
        precision: str = "fp32",
        compile: bool = False,  # noqa: A002  (torch's own name for it)
    ) -> None:
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.device = next(self.model.parameters()).device
        self.precision = check_precision(precision, self.device)
        if compile:
            from .runtime.compiling import compile_model  # noqa: PLC0415  (imports torch._dynamo)

            compile_model(self.model)
        defaults = segmenter_defaults(model)
        background_threshold = check_background_threshold(background_threshold)
        self.background_threshold = (
            defaults.background_threshold if background_threshold is None else background_threshold
        )
        self.keep_scores = keep_scores
        if sliding_window is None:
            sliding_window = defaults.sliding_window
        if sliding_window is True:
            sliding_window = SlidingWindow(
                canvas=defaults.sliding_canvas,
                overlap=defaults.sliding_overlap,
                window=defaults.sliding_window_size,
            )
        self.sliding_window = sliding_window or None

    def pixel_values(self, image: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(1, 3, h, w) normalised network input, per the checkpoint's chain (``model.preprocess``).

        Without ``shortest_edge`` (CLIPSeg, PartCLIPSeg): PIL bilinear resize straight to the network size,
        aspect ignored. With it (CAT-Seg, PartCATSeg): the photo resized so its short edge is
        ``shortest_edge`` (long edge capped at ``max_size``); the model pads and resizes it per encoder.
        An explicit ``size`` always resizes straight to it (the first chain).
        """
        spec = self.model.preprocess
        if size is None and spec.shortest_edge is not None:
            resized = resize_shortest_edge(image, spec.shortest_edge, spec.max_size)
        else:
            size = spec.size if size is None else size
            resized = image.resize((size[1], size[0]), resample=Image.BILINEAR)
        return normalize(image_tensor(resized), spec.mean, spec.std).to(self.device)

    @torch.inference_mode()
    def logits(self, image: ImageLike, vocab: Vocabulary) -> PartLogits:
        return self._predict(load_image(image), vocab)

    def _predict(self, picture: Image.Image, vocab: Vocabulary) -> PartLogits:
        with autocast(self.device, self.precision):
            if self.sliding_window is not None:
                return self._predict_sliding(picture, vocab, self.sliding_window)
            out = self.model.predict(self.pixel_values(picture), vocab)
        if self.model.preprocess.activation_before_resize and out.activation == "sigmoid":
            return sigmoid_logits(out)
        return out

    def _sliding_views(
        self, picture: Image.Image, canvas: int, window: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised (1, 3, canvas, canvas) canvas and (1, 3, *window) global view.

        With ``shortest_edge`` (official CAT-Seg): both interpolated by torch (bilinear, no antialiasing) from
        the short-edge-resized photo, then normalised. Without: PIL resizes of the photo itself.
        """
        spec = self.model.preprocess
        if spec.shortest_edge is None:
            return self.pixel_values(picture, (canvas, canvas)), self.pixel_values(picture, window)
        base = image_tensor(resize_shortest_edge(picture, spec.shortest_edge, spec.max_size)).to(self.device)
        views = (interpolate(base, (canvas, canvas)), interpolate(base, window))
        return tuple(normalize(view, spec.mean, spec.std) for view in views)  # type: ignore[return-value]

    def _predict_sliding(self, picture: Image.Image, vocab: Vocabulary, spec: SlidingWindow) -> PartLogits:
        """Windows + global view in one batch; returns probabilities (activation "identity") on the canvas."""
        win_h, win_w = (spec.window, spec.window) if spec.window else self.model.preprocess.size
        canvas, global_view = self._sliding_views(picture, spec.canvas, (win_h, win_w))
        rows = window_starts(spec.canvas, win_h, spec.overlap)
        cols = window_starts(spec.canvas, win_w, spec.overlap)
        boxes = [(y, x) for y in rows for x in cols]
        crops = [canvas[..., y : y + win_h, x : x + win_w] for y, x in boxes]
        if spec.global_view:
            crops.append(global_view)
        out = self.model.predict(torch.cat(crops), vocab)
        count = torch.zeros(spec.canvas, spec.canvas, device=canvas.device)
        for y, x in boxes:
            count[y : y + win_h, x : x + win_w] += 1

        def fold(logits: torch.Tensor) -> torch.Tensor:
            merged = torch.zeros(1, logits.shape[1], spec.canvas, spec.canvas, device=logits.device)
            for start in range(0, logits.shape[1], UPSAMPLE_CHUNK):
                part = logits[:, start : start + UPSAMPLE_CHUNK].float()
                probs = F.interpolate(part, size=(win_h, win_w), mode="bilinear", align_corners=False)
                probs = torch.sigmoid(probs) if out.activation == "sigmoid" else probs
                target = merged[0, start : start + UPSAMPLE_CHUNK]
                for i, (y, x) in enumerate(boxes):
                    target[:, y : y + win_h, x : x + win_w] += probs[i]
                target /= count
                if spec.global_view:
                    whole = F.interpolate(
                        probs[-1:], size=(spec.canvas, spec.canvas), mode="bilinear", align_corners=False
                    )
                    target.add_(whole[0]).mul_(0.5)
            return merged

        if out.activation not in ("sigmoid", "identity"):
            raise ValueError("Sliding-window inference needs per-class (sigmoid) scores, not a softmax.")
        return _as_probabilities(out, fold)

    @torch.inference_mode()
    def __call__(
        self,
        image: ImageLike,
        vocab: Vocabulary | str,
        object_mask: str | os.PathLike | np.ndarray | None = None,
    ) -> SegmentationResult:
        if isinstance(vocab, str):
            vocab = Vocabulary.parse(vocab)
        if not isinstance(vocab, Vocabulary):
            raise VocabularyError("The vocabulary must be a Vocabulary or text like 'dog: head, tail'.")
        picture = load_image(image)
        size = (picture.height, picture.width)
        objects = None if object_mask is None else load_object_mask(object_mask, vocab, size)
        logits = self._predict(picture, vocab)
        keep = self.keep_scores
        if keep is None:
            keep = len(vocab) * size[0] * size[1] <= AUTO_KEEP_SCORES_LIMIT
        with stage("label assignment"):
            return self._labels(logits, vocab, size, objects, keep)

    def _probabilities(self, logits: torch.Tensor, size: tuple[int, int], activation: str) -> torch.Tensor:
        with stage("upsampling"):
            up = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)[0]
        return torch.sigmoid(up) if activation == "sigmoid" else up

    def _predicted_objects(
        self, logits: PartLogits, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per pixel, the argmax of the object head over objects + "no object" (-1), and P(no object).

        This is PartCLIPSeg's Pred-All: the object decision gates the parts, so a pixel takes the best part
        of its predicted object, and background exactly where the object head says "no object". Without an
        object background channel, "no object" is where no object reaches the background threshold.
        """
        objects, background = logits.objects, logits.object_background
        activation = "sigmoid" if logits.activation == "sigmoid" else "identity"
        best = torch.full(size, -torch.inf, device=objects.device)
        label = torch.full(size, -1, dtype=torch.long, device=objects.device)
        for start in range(0, objects.shape[1], UPSAMPLE_CHUNK):
            # compare probabilities, not logits: saturated sigmoids tie, and ties go to the first object
            chunk = self._probabilities(objects[:, start : start + UPSAMPLE_CHUNK], size, activation)
            value, index = chunk.max(dim=0)
            better = value > best
            best = torch.where(better, value, best)
            label = torch.where(better, index + start, label)
        if background is not None:
            no_object = self._probabilities(background, size, activation)[0]
            label = torch.where(no_object > best, -1, label)  # background is the last channel: loses ties
        else:
            no_object = 1.0 - best
            label = torch.where(best >= self.background_threshold, label, -1)
        return label, no_object

    def _labels(
        self,
        logits: PartLogits,
        vocab: Vocabulary,
        size: tuple[int, int],
        objects: np.ndarray | None,
        keep_scores: bool,
    ) -> SegmentationResult:
        device = logits.parts.device
        part_objects = torch.as_tensor(vocab.part_to_object, device=device)
        object_ids = None if objects is None else torch.as_tensor(objects, device=device)
        no_object = None
        if object_ids is None and logits.objects is not None:  # Pred-All with the model's own objects
            object_ids, no_object = self._predicted_objects(logits, size)
        best = torch.full(size, -1.0, device=device)
        label = torch.full(size, -1, dtype=torch.long, device=device)
        kept = [] if keep_scores else None
        activation = logits.activation
        if activation == "softmax":  # normalise across parts and background before chunking
            stacked = [logits.parts] + ([logits.background] if logits.background is not None else [])
            probs = torch.softmax(torch.cat(stacked, dim=1).float(), dim=1)
            parts_logits, background = probs[:, : len(vocab)], probs[:, len(vocab) :]
            activation = "identity"
        else:
            parts_logits, background = logits.parts, logits.background
        for start in range(0, len(vocab), UPSAMPLE_CHUNK):
            scores = self._probabilities(parts_logits[:, start : start + UPSAMPLE_CHUNK], size, activation)
            if kept is not None:
                kept.append(scores.cpu())
            if object_ids is not None:  # Oracle-Obj: a pixel may only take parts of its own object
                allowed = part_objects[start : start + scores.shape[0], None, None] == object_ids
                scores = scores.masked_fill(~allowed, -1.0)
            value, index = scores.max(dim=0)
            better = value > best
            best = torch.where(better, value, best)
            label = torch.where(better, index + start, label)
        if object_ids is not None:
            label = torch.where(object_ids >= 0, label, -1)
            confidence = best.clamp(min=0)
            if no_object is not None:
                confidence = torch.where(label >= 0, confidence, no_object)
        elif background is not None:
            bg = self._probabilities(background, size, activation).max(dim=0).values
            label = torch.where(bg >= best, -1, label)
            confidence = torch.maximum(bg, best)
        else:
            label = torch.where(best >= self.background_threshold, label, -1)
            confidence = torch.where(label >= 0, best, 1.0 - best)
        if object_ids is not None:
            object_map = object_ids.clone()
        else:
            object_map = torch.where(label >= 0, part_objects[label.clamp(min=0)], -1)
        scores_array = torch.cat(kept).numpy() if kept is not None else None
        return SegmentationResult(
            part_map=label.cpu().numpy(),
            object_map=object_map.cpu().numpy(),
            confidence=confidence.float().cpu().numpy(),
            part_scores=scores_array,
            vocabulary=vocab,
            protocol="pred_all" if objects is None else "oracle_obj",
        )
