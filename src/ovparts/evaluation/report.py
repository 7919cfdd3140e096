"""The result of an evaluation: numbers, per-class table, provenance, and an atomic JSON writer.

A report keeps the accumulated matrices, so any other averaging rule can be applied afterwards without running
the model again (``report.with_rule("partcatseg")``).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..output_files import write_text
from ..vocabulary import Vocabulary
from .boundary import BoundaryIoU
from .rules import RuleResult, apply_rule, harmonic

SUMMARY_ROWS = (
    ("mIoU", ("mIoU", "mIoU-seen", "mIoU-unseen", "h-IoU")),
    ("mRecall", ("mRecall", "mRecall-seen", "mRecall-unseen", "h-Recall")),
    ("bIoU", ("bIoU", "bIoU-seen", "bIoU-unseen", "h-bIoU")),
)


def versions() -> dict[str, str]:
    """Versions that can change numbers, recorded in every report."""
    import torch

    from .. import __version__
    from ..data.masks import has_pycocotools

    return {
        "ovparts": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "pycocotools": "yes" if has_pycocotools() else "no (PIL polygon fallback)",
    }


def _clean(value: Any) -> Any:
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else round(float(value), 6)
    return value


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """Write JSON through a temporary file in the same folder and ``os.replace``: never a half-written file
    (``ovparts.output_files``: a failure is one sentence, a killed run's temp file is recognisable)."""
    path = Path(path)
    text = json.dumps(_clean(data), indent=2, allow_nan=False) + "\n"
    write_text(path, text)
    return path


@dataclass
class Report:
    """Numbers of one evaluation run; ``metrics`` are x100 like every published table."""

    dataset: str
    split: str
    protocol: str
    average: str
    vocabulary: Vocabulary
    seen_ids: list[int]
    confusion: np.ndarray
    result: RuleResult
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    boundary: BoundaryIoU | None = None
    boundary_d2: np.ndarray | None = None

    # ------------------------------------------------------------------ numbers
    @property
    def metrics(self) -> dict[str, float]:
        metrics = dict(self.result.metrics)
        if self.boundary is not None:
            biou = 100 * self.boundary.per_class()
            seen = np.zeros(len(biou), dtype=bool)
            seen[self.seen_ids] = True
            for key, values in (("bIoU", biou), ("bIoU-seen", biou[seen]), ("bIoU-unseen", biou[~seen])):
                metrics[key] = float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")
            metrics["h-bIoU"] = harmonic(metrics["bIoU-seen"], metrics["bIoU-unseen"])
        return metrics

    @property
    def official(self) -> dict[str, float]:
        return self.result.official

    def with_rule(self, average: str) -> Report:
        """The same run scored with another averaging rule (no inference needed)."""
        result = apply_rule(
            average, self.confusion, self.seen_ids, self.vocabulary.names, self.protocol, self.boundary_d2
        )
        clone = Report(**{**self.__dict__, "average": average, "result": result})
        clone.config = {**self.config, "average": average}
        return clone

    def per_class(self) -> list[dict[str, Any]]:
        n = len(self.vocabulary.parts)
        seen = set(self.seen_ids)
        gt_pixels = self.confusion[:, :n].sum(0)
        pred_pixels = self.confusion[:n, :n].sum(1)
        biou = 100 * self.boundary.per_class() if self.boundary is not None else None
        d2 = self.result.boundary_iou
        rows = []
        for part in self.vocabulary.parts:
            row: dict[str, Any] = {
                "id": part.id,
                "name": part.name,
                "seen": part.id in seen,
                "iou": float(self.result.iou[part.id]),
                "recall": None if self.result.recall is None else float(self.result.recall[part.id]),
                "gt_pixels": int(gt_pixels[part.id]),
                "pred_pixels": int(pred_pixels[part.id]),
            }
            if biou is not None:
                row["boundary_iou"] = float(biou[part.id])
            if d2 is not None:
                row["boundary_iou_d2_compat"] = float(d2[part.id])
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ output
    def to_dict(self, per_class: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "split": self.split,
            "protocol": self.protocol,
            "average": self.average,
            "metrics": self.metrics,
            "official": {k: v for k, v in self.official.items() if per_class or not _is_class_key(k)},
            "counts": self.counts,
            "skipped": self.skipped,
            "config": self.config,
            "versions": self.versions,
        }
        if per_class:
            data["per_class"] = self.per_class()
        return _clean(data)

    def save(self, path: str | Path, per_class: bool = True) -> Path:
        """Write the report as JSON atomically (a crash never leaves a truncated file)."""
        return write_json_atomic(self.to_dict(per_class=per_class), path)

    def table(self, per_class: bool = False) -> str:
        """Human-readable summary: seen / unseen / harmonic per metric, optionally every class."""
        metrics = self.metrics
        lines = [
            f"{self.dataset} [{self.split}]  protocol={self.protocol}  average={self.average}",
            "images {images}  records {records}  records without part labels {no_part_labels}  "
            "skipped files {errors}".format(
                **{k: self.counts.get(k, 0) for k in ("images", "records", "no_part_labels", "errors")}
            ),
            f"{'':10}{'all':>9}{'seen':>9}{'unseen':>9}{'harmonic':>10}",
        ]
        for label, keys in SUMMARY_ROWS:
            if not any(k in metrics for k in keys):
                continue
            cells = [_fmt(metrics.get(k)) for k in keys]
            lines.append(f"{label:10}{cells[0]:>9}{cells[1]:>9}{cells[2]:>9}{cells[3]:>10}")
        extras = [k for k in ("pAcc", "fwIoU", "background-IoU", "no-part-rate") if k in metrics]
        if extras:
            lines.append("  ".join(f"{k} {_fmt(metrics[k])}" for k in extras))
        if per_class:
            lines.append("")
            lines.append(
                f"{'id':>4}  {'class':40} {'split':6} {'IoU':>7} {'Recall':>7} {'bIoU':>7} {'GT px':>9}"
            )
            for row in self.per_class():
                lines.append(
                    f"{row['id']:>4}  {row['name'][:40]:40} {'seen' if row['seen'] else 'unseen':6} "
                    f"{_fmt(row['iou']):>7} {_fmt(row['recall']):>7} "
                    f"{_fmt(row.get('boundary_iou', row.get('boundary_iou_d2_compat'))):>7} {row['gt_pixels']:>9}"
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _is_class_key(key: str) -> bool:
    return key.startswith(("IoU-", "ACC-", "Recall-", "BoundaryIoU-"))


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}"
