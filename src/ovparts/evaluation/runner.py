"""``ovparts.evaluate``: run a model over a benchmark under a protocol and score it with a named rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import read_rgb
from ..data.records import EvalDataset, Sample
from ..data.registry import load_dataset
from ..errors import ConfigError, DatasetError, ImageError
from ..vocabulary import Vocabulary, benchmark_table
from .evaluator import Evaluator
from .predictions import PredictionWriter
from .protocols import ObjectPredictor, canonical_protocol, predict
from .report import Report
from .rules import RULES, check_rule


def as_segmenter(model: Any) -> Any:
    """A ``Segmenter`` as is; an ``nn.Module`` wrapped in ``ovparts.Segmenter`` with default settings."""
    import torch

    if isinstance(model, torch.nn.Module):
        from ..inference import Segmenter

        return Segmenter(model)
    if callable(model):
        return model
    raise ConfigError(
        f"evaluate() needs a model or a Segmenter, got {type(model).__name__}; "
        "use ovparts.load_model(...) or ovparts.Segmenter(model)."
    )


def seen_ids_for(vocabulary: Vocabulary, trained_on: str | None) -> list[int]:
    """Seen part ids: the benchmark's own split, or for cross-dataset runs the test parts whose exact name is
    a seen part of the training benchmark (everything else counts as unseen)."""
    if trained_on is None:
        return list(vocabulary.seen_part_ids)
    table = benchmark_table(trained_on)
    trained = {p["name"] for p in table["part_classes"] if p["seen"]}
    return [p.id for p in vocabulary.parts if p.name in trained]


def evaluate(
    model: Any,
    dataset: EvalDataset | str,
    protocol: str = "oracle_obj",
    average: str = "ovparts",
    *,
    root: str | Path | None = None,
    split: str = "val",
    boundary: str | None = "auto",
    trained_on: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    progress: bool = True,
    object_predictor: ObjectPredictor | None = None,
    save_predictions: str | Path | None = None,
    dilation_ratio: float = 0.02,
    extra_config: dict[str, Any] | None = None,
) -> Report:
    """Score ``model`` on ``dataset`` under ``protocol`` with the averaging rule ``average``.

    ``model`` is an ``nn.Module`` from ``ovparts.load_model`` or anything called as
    ``segmenter(image, vocab, object_mask=None)`` returning a result with ``part_map`` (and ``object_map`` for
    Pred-Obj). ``dataset`` is a reader (``ovparts.data.load_dataset``) or a benchmark name plus ``root``.
    Bad files are skipped and counted (``strict=True`` raises at the first one). ``trained_on`` names the
    training benchmark of a cross-dataset run; it redefines seen/unseen by exact part name.
    """
    protocol = canonical_protocol(protocol)
    check_rule(average)
    dataset = open_dataset(dataset, root, split, strict)
    segmenter = as_segmenter(model)
    vocabulary = dataset.vocabulary
    evaluator = Evaluator(
        vocabulary,
        protocol,
        average,
        seen_ids=seen_ids_for(vocabulary, trained_on),
        boundary=boundary,
        dilation_ratio=dilation_ratio,
        dataset=dataset.name,
        split=dataset.split,
        skips=dataset.skips,
    )
    evaluator.config = run_config(
        dataset, evaluator, trained_on, limit, type(segmenter).__name__, extra_config
    )
    writer = PredictionWriter(save_predictions) if save_predictions is not None else None

    total = len(dataset) if limit is None else min(len(dataset), limit)
    bar = _progress(total, progress, f"{dataset.name} {protocol}")
    try:
        for sample in dataset:
            if limit is not None and evaluator.images >= limit:
                break
            bar.update(1)
            image = checked_image(dataset, sample)
            if image is None:
                continue
            try:
                predictions = predict(protocol, segmenter, image, sample, vocabulary, object_predictor)
            except ImageError as exc:
                _skip(dataset, sample.image_path, exc)
                continue
            evaluator.process(sample, predictions)
            if writer is not None:
                writer.write(sample, predictions)
    finally:
        bar.close()
    return evaluator.evaluate()


def open_dataset(
    dataset: EvalDataset | str, root: str | Path | None, split: str, strict: bool
) -> EvalDataset:
    """A reader from a benchmark name and ``root``, or the given dataset (made strict if asked)."""
    if isinstance(dataset, str):
        if root is None:
            raise ConfigError(
                f"Evaluating on {dataset!r} by name needs root=, the folder holding the dataset."
            )
        return load_dataset(dataset, root, split=split, strict=strict)
    if strict:
        dataset.skips.strict = True
    return dataset


def run_config(
    dataset: EvalDataset,
    evaluator: Evaluator,
    trained_on: str | None,
    limit: int | None,
    segmenter: str,
    extra_config: dict[str, Any] | None,
) -> dict[str, Any]:
    """The provenance a report records: what was scored, how, and by what."""
    return {
        "dataset": dataset.name,
        "split": dataset.split,
        "root": str(getattr(dataset, "root", "")),
        "protocol": evaluator.protocol,
        "average": evaluator.average,
        "boundary": evaluator.boundary_config(),
        "trained_on": trained_on,
        "limit": limit,
        "strict": bool(dataset.skips.strict),
        "segmenter": segmenter,
        **(extra_config or {}),
    }


def checked_image(dataset: EvalDataset, sample: Sample) -> np.ndarray | None:
    """The sample's RGB image, or None (skipped and counted) when it has no record, cannot be read, or its
    size differs from the label maps'."""
    if not sample.regions:
        return None
    try:
        image = read_rgb(sample.image_path)
    except DatasetError as exc:
        _skip(dataset, sample.image_path, exc)
        return None
    if image.shape[:2] != sample.size:
        _skip(
            dataset,
            sample.image_path,
            DatasetError(f"{sample.image_path}: image and label map sizes differ."),
        )
        return None
    return image


def _skip(dataset: EvalDataset, path: Path, exc: Exception) -> None:
    message = str(exc)
    prefix = f"{path}: "
    dataset.skips.error(path, message[len(prefix) :] if message.startswith(prefix) else message)


class _NullBar:
    def update(self, _: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, description: str):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", leave=False)


def evaluate_rules(report: Report, rules: Sequence[str] = tuple(RULES)) -> dict[str, dict[str, float]]:
    """Every named rule applied to one run's matrices: shows how much the choice of rule moves the numbers."""
    return {rule: report.with_rule(rule).metrics for rule in rules}
