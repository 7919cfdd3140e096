"""ovparts: open-vocabulary part segmentation in pure PyTorch.

Public API (stable names; see README):
    Vocabulary, load_model, available_models, Segmenter, SegmentationResult, evaluate
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import OvpartsError
from .vocabulary import Part, Vocabulary

__version__ = "0.1.0"

_LAZY = {
    "load_model": "ovparts.models.registry",
    "available_models": "ovparts.models.registry",
    "Segmenter": "ovparts.inference",
    "SegmentationResult": "ovparts.inference",
    "evaluate": "ovparts.evaluation",
}

__all__ = [
    "OvpartsError",
    "Part",
    "Vocabulary",
    "load_model",
    "available_models",
    "Segmenter",
    "SegmentationResult",
    "evaluate",
]

if TYPE_CHECKING:
    from .evaluation import evaluate
    from .inference import SegmentationResult, Segmenter
    from .models.registry import available_models, load_model


def __getattr__(name: str):
    # torch and transformers load only when a model is needed, so `ovparts --help` and Vocabulary stay fast.
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovparts' has no attribute {name!r}")
