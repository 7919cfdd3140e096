"""Evaluation of open-vocabulary part segmentation: confusion matrix, named averaging rules, protocols.

>>> import ovparts
>>> report = ovparts.evaluate(model, "pascal_part_116", root="datasets", protocol="oracle_obj")  # doctest: +SKIP
>>> print(report.table())                                                                       # doctest: +SKIP

Names load lazily: the command line reads ``RULES``, ``PROTOCOLS`` and ``BOUNDARY_MODES`` for its choices
without importing torch (the boundary code needs it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_LAZY = {
    "BoundaryIoU": "boundary",
    "D2BoundaryConfusion": "boundary",
    "boundary_width": "boundary",
    "class_boundaries": "boundary",
    "d2_mask_to_boundary": "boundary",
    "ConfusionMatrix": "confusion",
    "block_iou": "confusion",
    "Evaluator": "evaluator",
    "STRATEGIES": "choices",
    "PROTOCOLS": "choices",
    "canonical_protocol": "protocols",
    "predict": "protocols",
    "Report": "report",
    "write_json_atomic": "report",
    "BOUNDARY_MODES": "choices",
    "RULES": "rules",
    "RuleResult": "rules",
    "apply_rule": "rules",
    "evaluate": "runner",
    "evaluate_rules": "runner",
    "evaluate_predictions": "runner",
    "seen_ids_for": "runner",
}

__all__ = [
    "BOUNDARY_MODES",
    "BoundaryIoU",
    "ConfusionMatrix",
    "D2BoundaryConfusion",
    "Evaluator",
    "PROTOCOLS",
    "RULES",
    "Report",
    "RuleResult",
    "STRATEGIES",
    "apply_rule",
    "block_iou",
    "boundary_width",
    "canonical_protocol",
    "class_boundaries",
    "d2_mask_to_boundary",
    "evaluate",
    "evaluate_predictions",
    "evaluate_rules",
    "predict",
    "seen_ids_for",
    "write_json_atomic",
]

if TYPE_CHECKING:
    from .boundary import (
        BoundaryIoU,
        D2BoundaryConfusion,
        boundary_width,
        class_boundaries,
        d2_mask_to_boundary,
    )
    from .choices import BOUNDARY_MODES, PROTOCOLS, STRATEGIES
    from .confusion import ConfusionMatrix, block_iou
    from .evaluator import Evaluator
    from .protocols import canonical_protocol, predict
    from .report import Report, write_json_atomic
    from .rules import RULES, RuleResult, apply_rule
    from .runner import evaluate, evaluate_predictions, evaluate_rules, seen_ids_for


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
