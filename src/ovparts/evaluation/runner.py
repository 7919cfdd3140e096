"""``ovparts.evaluate``: run a model over a benchmark under a protocol and score it with a named rule.

Also ``evaluate_predictions``: score the predictions a run saved (``save_predictions=``) under any rule, with
no model. Both run in one process or, with ``devices`` / ``num_nodes``, on many (``distributed.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.records import EvalDataset
from ..data.registry import load_dataset
from ..errors import ConfigError
from ..vocabulary import Vocabulary, benchmark_table
from .evaluator import Evaluator
from .loop import EvalRun, ItemSource, random_access, run_local
from .predictions import PredictionStore, run_digest, saved_run
from .protocols import ObjectPredictor, canonical_protocol
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
    resume: bool = False,
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "ddp",
    accelerator: str = "auto",
    num_workers: int | None = None,
    restrict_classes: bool = True,
) -> Report:
    """Score ``model`` on ``dataset`` under ``protocol`` with the averaging rule ``average``.

    ``model`` is an ``nn.Module`` from ``ovparts.load_model`` or anything called as
    ``segmenter(image, vocab, object_mask=None)`` returning a result with ``part_map`` (and ``object_map`` for
    Pred-Obj). ``dataset`` is a reader (``ovparts.data.load_dataset``) or a benchmark name plus ``root``.
    Bad files are skipped and counted (``strict=True`` raises at the first one). ``trained_on`` names the
    training benchmark of a cross-dataset run; it redefines seen/unseen by exact part name. ``limit`` scores
    the first N images of the split.

    ``save_predictions`` keeps each image's part maps as they are made (``predictions.py``); with ``resume``
    the images already saved there by the same run settings are read back instead of predicted again, so a
    killed run continues where it stopped and ends with the same report. ``devices`` x ``num_nodes`` > 1 runs
    on that many processes (Lightning's ``ddp``; CPU processes talk over gloo) with ``num_workers`` loader
    processes each (default 0 in one process, 2 per rank otherwise); the report is the same bit for bit.
    ``restrict_classes=False`` runs the whole vocabulary in Oracle-Obj even where the model's classes are
    independent (``restriction.py``): the same label maps, more work; for measuring the restriction.
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
    store = None
    if save_predictions is not None:
        settings = prediction_settings(evaluator, object_predictor)
        store = PredictionStore(save_predictions, run_digest(settings), evaluator.config)
    elif resume:
        raise ConfigError("Resuming needs the folder of the saved predictions (--save-predictions).")
    source = ItemSource(dataset, protocol, store, reuse=resume)
    run = EvalRun(source, segmenter, evaluator, object_predictor, dataset.skips, restrict_classes)
    execute(run, limit, progress, devices, num_nodes, strategy, accelerator, num_workers)
    return evaluator.evaluate()


def evaluate_predictions(
    folder: str | Path,
    average: str = "ovparts",
    *,
    dataset: EvalDataset | str | None = None,
    root: str | Path | None = None,
    boundary: str | None = "auto",
    dilation_ratio: float = 0.02,
    progress: bool = True,
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "ddp",
    accelerator: str = "auto",
    num_workers: int | None = None,
) -> Report:
    """Score the predictions a run saved in ``folder`` with the rule ``average``, without any model.

    The dataset, split, protocol, limit and the rest of the run's settings come from the saved files; only
    the ground truth is read (``root`` overrides the saved dataset folder, e.g. when it moved). The report
    equals the one the run would have produced with ``average`` (its ``config`` also names ``folder``).
    """
    check_rule(average)
    config, digest = saved_run(folder)
    name = config.get("dataset", "")
    if dataset is None:
        dataset = open_dataset(name, root if root is not None else config.get("root"), config["split"], False)
    else:
        dataset = open_dataset(dataset, root, config["split"], False)
    if dataset.name != name or dataset.split != config["split"]:
        raise ConfigError(
            f"The predictions in {folder} are of {name} [{config['split']}], not {dataset.name} [{dataset.split}]."
        )
    dataset.skips.strict = bool(config.get("strict", False))
    vocabulary = dataset.vocabulary
    evaluator = Evaluator(
        vocabulary,
        config["protocol"],
        average,
        seen_ids=seen_ids_for(vocabulary, config.get("trained_on")),
        boundary=boundary,
        dilation_ratio=dilation_ratio,
        dataset=dataset.name,
        split=dataset.split,
        skips=dataset.skips,
    )
    evaluator.config = {
        **config,
        "average": average,
        "boundary": evaluator.boundary_config(),
        "from_predictions": str(folder),
    }
    source = ItemSource(dataset, evaluator.protocol, PredictionStore(folder, digest, config), reuse=True)
    run = EvalRun(source, None, evaluator, None, dataset.skips)
    execute(run, config.get("limit"), progress, devices, num_nodes, strategy, accelerator, num_workers)
    return evaluator.evaluate()


def execute(
    run: EvalRun,
    limit: int | None,
    progress: bool,
    devices: int,
    num_nodes: int,
    strategy: str,
    accelerator: str,
    num_workers: int | None,
) -> None:
    """Consume the first ``limit`` images of the split in this process or on ``devices`` x ``num_nodes`` ranks."""
    dataset = run.source.dataset
    for value, option in ((devices, "devices"), (num_nodes, "num_nodes")):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{option} must be a positive whole number, got {value!r}.")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
        raise ConfigError(f"num_workers must be 0 or more, got {num_workers!r}.")
    indices = range(len(dataset) if limit is None else min(len(dataset), limit))
    description = f"{dataset.name} {run.evaluator.protocol}"
    if random_access(dataset):
        dataset.skips.items = list(dataset.scan_skips)  # as iterating the reader would start
    if devices * num_nodes == 1:
        run_local(run, indices, progress, description, 0 if num_workers is None else num_workers)
        return
    if not random_access(dataset):
        raise ConfigError(
            "Evaluating on several processes needs a dataset with random access (load(index)): a benchmark "
            "reader from ovparts.data.load_dataset or an InMemoryDataset."
        )
    from .distributed import run_distributed

    run_distributed(
        run,
        indices,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator=accelerator,
        num_workers=2 if num_workers is None else num_workers,
        progress=progress,
    )


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


_NOT_DECIDING = ("average", "boundary", "limit", "strict", "root", "trained_on")


def prediction_settings(evaluator: Evaluator, object_predictor: ObjectPredictor | None) -> dict[str, Any]:
    """What decides a saved prediction (its digest): not the rule, boundary, limit, strictness, data folder
    or seen/unseen split."""
    config = evaluator.config
    decided = {k: v for k, v in config.items() if k not in _NOT_DECIDING}
    return {
        **decided,
        "vocabulary": run_digest({"names": evaluator.vocabulary.names}),
        "object_predictor": None if object_predictor is None else type(object_predictor).__name__,
    }


def evaluate_rules(report: Report, rules: Sequence[str] = tuple(RULES)) -> dict[str, dict[str, float]]:
    """Every named rule applied to one run's matrices: shows how much the choice of rule moves the numbers."""
    return {rule: report.with_rule(rule).metrics for rule in rules}
