"""CLIPSeg as an ONNX graph (pixels + conditions -> logits) and an onnxruntime path that plugs into Segmenter.

Only the image side is exported: the vocabulary's text embeddings are computed once per vocabulary in
PyTorch and cached (tokenizers are not ONNX graphs, and the text encoder is not per-image cost), then fed to
the graph as its ``conditions`` input, so one exported file serves every vocabulary size.
Needs the ``onnx`` extra: ``pip install ovparts[onnx]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..methods.clipseg.model import ClipSeg
from ..models.base import PartLogits, Preprocess
from ..vocabulary import Vocabulary


class _ClipSegGraph(nn.Module):
    """The traced part: CLIP image encoder + decoder for N conditions, all N decoded in one chunk."""

    def __init__(self, model: ClipSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values, conditions).logits


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ConfigError("ONNX export needs the onnx extra: pip install 'ovparts[onnx]'.") from err


def export_clipseg_onnx(model: ClipSeg, path: str | os.PathLike, classes: int = 8) -> Path:
    """Write ``model`` as ONNX with a dynamic number of conditions (and batch); returns the file's path.

    The class chunk loop is a Python loop, so it is unrolled at export: the chunk is raised above any
    vocabulary for the export, making it one step whatever N is at run time.
    """
    _require_onnx()
    if not isinstance(model, ClipSeg) or type(model).name != "clipseg":
        raise ConfigError("ONNX export supports the clipseg model only.")
    path = Path(path)
    model = model.eval()
    height, width = model.preprocess.size
    pixels = torch.randn(2, 3, height, width)
    conditions = torch.randn(classes, model.config.projection_dim)
    chunk = model.decoder.class_chunk
    model.decoder.class_chunk = 1 << 20
    try:
        torch.onnx.export(
            _ClipSegGraph(model),
            (pixels, conditions),
            str(path),
            input_names=["pixel_values", "conditions"],
            output_names=["logits"],
            dynamic_axes={
                "pixel_values": {0: "batch"},
                "conditions": {0: "classes"},
                "logits": {0: "batch", 1: "classes"},
            },
            dynamo=False,  # the TorchScript tracer: seconds, where the dynamo exporter takes a minute
        )
    finally:
        model.decoder.class_chunk = chunk
    return path


class OnnxClipSeg:
    """An onnxruntime CLIPSeg with the model interface the Segmenter uses (``preprocess``, ``predict``).

    ``model`` supplies the (cached) text conditions and the config; the image side runs in onnxruntime.
    """

    def __init__(self, model: ClipSeg, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        _require_onnx()
        import onnxruntime

        self.model = model.eval()
        self.config = model.config
        self.session = onnxruntime.InferenceSession(
            str(path), providers=providers or ["CPUExecutionProvider"]
        )

    @property
    def preprocess(self) -> Preprocess:
        return self.model.preprocess

    def eval(self) -> OnnxClipSeg:
        return self

    def parameters(self):
        return self.model.parameters()

    def predict(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> PartLogits:
        model = self.model
        conditions = model.text_conditions(vocab.part_texts(model.config.text_style))
        if model.non_object_embedding is not None:
            conditions = torch.cat([conditions, model.non_object_embedding.to(conditions.dtype)])
        inputs = {
            "pixel_values": pixel_values.detach().cpu().float().numpy(),
            "conditions": conditions.detach().cpu().float().numpy(),
        }
        (logits,) = self.session.run(["logits"], inputs)
        logits = torch.from_numpy(np.ascontiguousarray(logits))
        parts = logits[:, : len(vocab)]
        background = logits[:, len(vocab) :] if model.non_object_embedding is not None else None
        return PartLogits(parts=parts, background=background)
