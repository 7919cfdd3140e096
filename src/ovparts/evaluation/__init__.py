"""Evaluation of open-vocabulary part segmentation: confusion matrix, named averaging rules, protocols.

>>> import ovparts
>>> report = ovparts.evaluate(model, "pascal_part_116", root="datasets", protocol="oracle_obj")  # doctest: +SKIP
>>> print(report.table())                                                                       # doctest: +SKIP
"""

from .boundary import BoundaryIoU, D2BoundaryConfusion, boundary_width, class_boundaries, d2_mask_to_boundary
from .confusion import ConfusionMatrix, block_iou
from .protocols import PROTOCOLS, canonical_protocol, predict
from .report import Report, write_json_atomic
from .rules import RULES, RuleResult, apply_rule
from .runner import evaluate, evaluate_rules, seen_ids_for

__all__ = [
    "PROTOCOLS",
    "RULES",
    "BoundaryIoU",
    "ConfusionMatrix",
    "D2BoundaryConfusion",
    "Report",
    "RuleResult",
    "apply_rule",
    "block_iou",
    "boundary_width",
    "canonical_protocol",
    "class_boundaries",
    "d2_mask_to_boundary",
    "evaluate",
    "evaluate_rules",
    "predict",
    "seen_ids_for",
    "write_json_atomic",
]
