"""``ovparts.evaluate``: run a model over a benchmark under a protocol and score it with a named rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.io import read_rgb
from ..data.records import EvalDataset
from ..data.registry import load_dataset
from ..errors import ConfigError, DatasetError, ImageError, OvpartsError
from ..vocabulary import Vocabulary, benchmark_table
from .boundary import BoundaryIoU, D2BoundaryConfusion
from .confusion import ConfusionMatrix
from .protocols import ObjectPredictor, canonical_protocol, predict
from .report import Report, versions
from .rules import RULES, apply_rule

BOUNDARY_MODES = ("auto", "none", "per_class", "d2_compat", "both")


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


def _boundary_modes(mode: str | None, average: str, num_classes: int) -> tuple[bool, bool]:
    """(per_class, d2_compat) for a boundary setting; ``auto`` follows the rule's own habit."""
    mode = "none" if mode in (None, False) else mode
    if mode not in BOUNDARY_MODES:
        raise ConfigError(f"Unknown boundary mode {mode!r}; choose from {', '.join(BOUNDARY_MODES)}.")
    if mode == "auto":
        per_class, d2 = average == "ovparts", average == "partclipseg"
    else:
        per_class, d2 = mode in ("per_class", "both"), mode in ("d2_compat", "both")
    if d2 and num_classes >= 255:
        if mode in ("d2_compat", "both"):
            raise ConfigError(
                "The d2-compatible boundary IoU needs fewer than 255 classes (PartCLIPSeg skips it too)."
            )
        d2 = False
    return per_class, d2


def _save_prediction(folder: Path, key: str, part_map: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = key.replace("/", "__").replace("\\", "__")
    Image.fromarray(np.where(part_map < 0, 65535, part_map).astype(np.uint16)).save(folder / f"{name}.png")


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
    if average not in RULES:
        raise ConfigError(f"Unknown averaging rule {average!r}; choose from {', '.join(RULES)}.")
    if isinstance(dataset, str):
        if root is None:
            raise ConfigError(
                f"Evaluating on {dataset!r} by name needs root=, the folder holding the dataset."
            )
        dataset = load_dataset(dataset, root, split=split, strict=strict)
    elif strict:
        dataset.skips.strict = True
    segmenter = as_segmenter(model)
    vocabulary = dataset.vocabulary
    n = len(vocabulary.parts)
    seen_ids = seen_ids_for(vocabulary, trained_on)
    per_class_boundary, d2_boundary = _boundary_modes(boundary, average, n)

    confusion = ConfusionMatrix(n)
    boundary_iou = BoundaryIoU(n, dilation_ratio) if per_class_boundary else None
    boundary_d2 = D2BoundaryConfusion(n, dilation_ratio) if d2_boundary else None
    out_dir = Path(save_predictions) if save_predictions is not None else None

    images = records = 0
    total = len(dataset) if limit is None else min(len(dataset), limit)
    bar = _progress(total, progress, f"{dataset.name} {protocol}")
    try:
        for sample in dataset:
            if limit is not None and images >= limit:
                break
            bar.update(1)
            if not sample.regions:
                continue
            try:
                image = read_rgb(sample.image_path)
            except DatasetError as exc:
                _skip(dataset, sample.image_path, exc)
                continue
            if image.shape[:2] != sample.size:
                _skip(
                    dataset,
                    sample.image_path,
                    DatasetError(f"{sample.image_path}: image and label map sizes differ."),
                )
                continue
            try:
                predictions = predict(protocol, segmenter, image, sample, vocabulary, object_predictor)
            except ImageError as exc:
                _skip(dataset, sample.image_path, exc)
                continue
            images += 1
            saved: set[int] = set()
            for region, part_map in predictions:
                gt = sample.region_gt(region)
                try:
                    confusion.update(part_map, gt)
                except ValueError as exc:
                    raise OvpartsError(
                        f"The segmenter's part map for {sample.image_path} does not fit the vocabulary of "
                        f"{len(vocabulary.parts)} parts ({exc})."
                    ) from exc
                if boundary_iou is not None:
                    boundary_iou.update(part_map, gt)
                if boundary_d2 is not None:
                    boundary_d2.update(part_map, gt)
                records += 1
                if out_dir is not None and id(part_map) not in saved:
                    suffix = "" if not saved else f"__{region.name}"
                    _save_prediction(out_dir, sample.key + suffix, part_map)
                    saved.add(id(part_map))
    finally:
        bar.close()

    skip_counts = dataset.skips.counts()
    counts = {
        "images": images,
        "records": records,
        "no_part_labels": skip_counts.get("no_part_labels", 0),
        "errors": skip_counts.get("error", 0),
    }
    skipped = [{"path": s.path, "reason": s.reason} for s in dataset.skips.errors]
    d2_matrix = boundary_d2.matrix if boundary_d2 is not None else None
    result = apply_rule(average, confusion.matrix, seen_ids, vocabulary.names, protocol, d2_matrix)
    config = {
        "dataset": dataset.name,
        "split": dataset.split,
        "root": str(getattr(dataset, "root", "")),
        "protocol": protocol,
        "average": average,
        "boundary": {
            "per_class": per_class_boundary,
            "d2_compat": d2_boundary,
            "dilation_ratio": dilation_ratio,
        },
        "trained_on": trained_on,
        "limit": limit,
        "strict": bool(dataset.skips.strict),
        "segmenter": type(segmenter).__name__,
        **(extra_config or {}),
    }
    return Report(
        dataset=dataset.name,
        split=dataset.split,
        protocol=protocol,
        average=average,
        vocabulary=vocabulary,
        seen_ids=seen_ids,
        confusion=confusion.matrix,
        result=result,
        counts=counts,
        skipped=skipped,
        config=config,
        versions=versions(),
        boundary=boundary_iou,
        boundary_d2=d2_matrix,
    )


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
