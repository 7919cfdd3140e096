"""The evaluator: detectron2's ``DatasetEvaluator`` shape (``reset`` / ``process`` / ``evaluate``).

One object holds everything a split's score is accumulated into: the confusion matrix, the per-class boundary
IoU counts, PartCLIPSeg's whole-map boundary matrix and the image and record counts. It never runs a model:
``ovparts.evaluate``, the distributed runner and the training module's validation feed it each sample's
protocol predictions, and ``evaluate()`` applies the named averaging rule. Every accumulator is an integer
count, so shards summed in any order (``merge``, ``all_reduce``) give the very same report as one process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.records import Region, Sample, SkipLog
from ..errors import OvpartsError
from ..vocabulary import Vocabulary
from .boundary import BoundaryIoU, D2BoundaryConfusion
from .confusion import ConfusionMatrix
from .protocols import canonical_protocol
from .report import Report, versions
from .rules import apply_rule, boundary_modes, check_rule

Predictions = Sequence[tuple[Region, np.ndarray]]
"""What ``protocols.predict`` returns for a sample: each record with its part map (records may share one)."""


class Evaluator:
    """Accumulates one split under one protocol; ``evaluate()`` scores it with the averaging rule ``average``.

    ``seen_ids`` defaults to the vocabulary's own split. ``boundary`` is one of ``rules.BOUNDARY_MODES``.
    ``skips`` is the reader's log of what it left out, counted in the report. ``config`` is the provenance the
    report carries (the runner fills it; the evaluator adds nothing to it).
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        protocol: str = "oracle_obj",
        average: str = "ovparts",
        *,
        seen_ids: Sequence[int] | None = None,
        boundary: str | None = "auto",
        dilation_ratio: float = 0.02,
        dataset: str = "in_memory",
        split: str = "val",
        skips: SkipLog | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.protocol = canonical_protocol(protocol)
        self.average = check_rule(average)
        self.num_classes = len(vocabulary.parts)
        self.seen_ids = list(vocabulary.seen_part_ids if seen_ids is None else seen_ids)
        self.per_class_boundary, self.d2_boundary = boundary_modes(boundary, average, self.num_classes)
        self.dilation_ratio = dilation_ratio
        self.dataset = dataset
        self.split = split
        self.skips = skips if skips is not None else SkipLog()
        self.config = dict(config or {})
        self.reset()

    # ------------------------------------------------------------------ detectron2's three methods
    def reset(self) -> None:
        """Empty accumulators (the skip log belongs to the reader and is left alone)."""
        n = self.num_classes
        self.confusion = ConfusionMatrix(n)
        self.boundary = BoundaryIoU(n, self.dilation_ratio) if self.per_class_boundary else None
        self.boundary_d2 = D2BoundaryConfusion(n, self.dilation_ratio) if self.d2_boundary else None
        self.images = 0
        self.records = 0

    def process(self, sample: Sample, predictions: Predictions) -> None:
        """Add one image's records: each record's part map scored against its own region's ground truth."""
        self.images += 1
        for region, part_map in predictions:
            gt = sample.region_gt(region)
            try:
                self.confusion.update(part_map, gt)
            except ValueError as exc:
                raise OvpartsError(
                    f"The segmenter's part map for {sample.image_path} does not fit the vocabulary of "
                    f"{self.num_classes} parts ({exc})."
                ) from exc
            if self.boundary is not None:
                self.boundary.update(part_map, gt)
            if self.boundary_d2 is not None:
                self.boundary_d2.update(part_map, gt)
            self.records += 1

    def evaluate(self) -> Report:
        """The report of everything processed so far, scored with the evaluator's rule."""
        skip_counts = self.skips.counts()
        counts = {
            "images": self.images,
            "records": self.records,
            "no_part_labels": skip_counts.get("no_part_labels", 0),
            "errors": skip_counts.get("error", 0),
        }
        d2_matrix = self.boundary_d2.matrix if self.boundary_d2 is not None else None
        result = apply_rule(
            self.average,
            self.confusion.matrix,
            self.seen_ids,
            self.vocabulary.names,
            self.protocol,
            d2_matrix,
        )
        return Report(
            dataset=self.dataset,
            split=self.split,
            protocol=self.protocol,
            average=self.average,
            vocabulary=self.vocabulary,
            seen_ids=self.seen_ids,
            confusion=self.confusion.matrix,
            result=result,
            counts=counts,
            skipped=[{"path": s.path, "reason": s.reason} for s in self.skips.errors],
            config=dict(self.config),
            versions=versions(),
            boundary=self.boundary,
            boundary_d2=d2_matrix,
        )

    # ------------------------------------------------------------------ shards
    def boundary_config(self) -> dict[str, Any]:
        """What the report's ``config["boundary"]`` records."""
        return {
            "per_class": self.per_class_boundary,
            "d2_compat": self.d2_boundary,
            "dilation_ratio": self.dilation_ratio,
        }

    def _arrays(self) -> list[np.ndarray]:
        arrays = [self.confusion.matrix]
        if self.boundary is not None:
            arrays += [self.boundary.intersection, self.boundary.gt_boundary, self.boundary.pred_boundary]
        if self.boundary_d2 is not None:
            arrays.append(self.boundary_d2.matrix)
        return arrays

    def state(self) -> np.ndarray:
        """Every accumulator and count in one int64 vector: one collective sums a whole shard."""
        return np.concatenate(
            [a.reshape(-1) for a in self._arrays()] + [np.array([self.images, self.records], np.int64)]
        )

    def load_state(self, vector: np.ndarray) -> None:
        """Replace the accumulators by ``vector`` (a ``state()``, typically summed over shards)."""
        vector = np.asarray(vector, dtype=np.int64).reshape(-1)
        expected = self.state().size
        if vector.size != expected:
            raise ValueError(f"an evaluator state has {expected} entries, got {vector.size}")
        offset = 0
        for array in self._arrays():
            array[...] = vector[offset : offset + array.size].reshape(array.shape)
            offset += array.size
        self.images, self.records = int(vector[offset]), int(vector[offset + 1])

    def merge(self, other: Evaluator) -> Evaluator:
        """Add another shard's accumulators (same vocabulary and settings); returns self."""
        self.load_state(self.state() + other.state())
        return self

    def all_reduce(self, reduce_sum: Callable[[Any], Any]) -> None:
        """Sum the accumulators over processes with ``reduce_sum`` (a tensor in, the summed tensor out).

        ``reduce_sum`` is e.g. Lightning's ``strategy.reduce(t, reduce_op="sum")`` or a wrapper around
        ``torch.distributed.all_reduce``; integers travel as int64, so the sum is exact.
        """
        import torch

        summed = reduce_sum(torch.from_numpy(self.state()))
        self.load_state(torch.as_tensor(summed).cpu().numpy().astype(np.int64))
