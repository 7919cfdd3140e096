"""Click commands for benchmarks: ``ovparts evaluate`` and ``ovparts data check | info``.

They live apart from ``ovparts.cli`` so the evaluation stack can be developed and tested alone; ``ovparts.cli`` registers
``evaluate_command`` as ``evaluate`` and ``data_group`` as ``data``. Bad input ends with one sentence on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_USER_ERROR, ConfigError
from ..evaluation.choices import BOUNDARY_MODES, PROTOCOLS, STRATEGIES
from ..evaluation.rules import RULES
from ..vocabulary import BENCHMARKS
from . import no_text_cache_option, process_options, rank_zero


def build_segmenter(model: str, weights: str | None, config: str | None, device: str) -> Any:
    """Model name -> ``Segmenter``; a seam the tests replace with a fake model."""
    import ovparts

    network = ovparts.load_model(model, weights=weights, config=config, device=device)
    return ovparts.Segmenter(network)


@click.command("evaluate")
@no_text_cache_option
@click.option("--model", "model_name", default=None, help="Model name; see `ovparts models`.")
@click.option(
    "--weights", default=None, help="Checkpoint folder, published name (`ovparts weights list`) or hub id."
)
@click.option("--config", "model_config", default=None, help="Model config name, e.g. 'tiny' for tests.")
@click.option("--dataset", default=None, help=f"Benchmark: {', '.join(BENCHMARKS)}.")
@click.option(
    "--root",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the dataset (or the dataset folder itself).",
)
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "train"]))
@click.option(
    "--protocol",
    default="oracle_obj",
    show_default=True,
    type=click.Choice(PROTOCOLS),
    help="What the model is told about objects.",
)
@click.option(
    "--average",
    default="ovparts",
    show_default=True,
    type=click.Choice(tuple(RULES)),
    help="Averaging rule; all but 'ovparts' reproduce an official evaluator (docs/evaluation.md).",
)
@click.option(
    "--boundary",
    default="auto",
    show_default=True,
    type=click.Choice(BOUNDARY_MODES),
    help="Boundary IoU: per-class (Cheng et al.) and/or PartCLIPSeg's whole-map variant.",
)
@click.option(
    "--trained-on", default=None, help="Training benchmark of a cross-dataset run (redefines seen/unseen)."
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
@click.option("--per-class", is_flag=True, help="Print every class's IoU, recall and boundary IoU.")
@click.option(
    "--strict", is_flag=True, help="Fail at the first bad file instead of skipping and counting it."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N images.")
@click.option(
    "--device", default="cpu", show_default=True, help="cpu, cuda, mps: the kind of device to run on."
)
@click.option(
    "--save-predictions",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for predicted part maps (uint16 PNG, 65535 = no part), written as they are made.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Reuse the predictions this run's settings already saved in --save-predictions (continue a killed run).",
)
@click.option(
    "--from-predictions",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Score the predictions a run saved in this folder with --average; no model is loaded.",
)
@process_options("images")
@click.option(
    "--strategy",
    default="ddp",
    show_default=True,
    type=click.Choice(STRATEGIES),
    help="How ranks run: one process per device (torchrun and SLURM are detected).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def evaluate_command(
    model_name: str | None,
    weights: str | None,
    model_config: str | None,
    dataset: str | None,
    root: Path | None,
    split: str,
    protocol: str,
    average: str,
    boundary: str,
    trained_on: str | None,
    out: Path | None,
    per_class: bool,
    strict: bool,
    limit: int | None,
    device: str,
    save_predictions: Path | None,
    resume: bool,
    from_predictions: Path | None,
    devices: int,
    num_nodes: int,
    strategy: str,
    workers: int | None,
    no_progress: bool,
) -> None:
    """Score a model on a benchmark and print seen / unseen / harmonic mIoU.

    \b
    Examples:
      ovparts evaluate --model METHOD --dataset pascal_part_116 --root datasets --save-predictions preds
      ovparts evaluate ... --save-predictions preds --resume      # continue a killed run
      ovparts evaluate --from-predictions preds --average ov_parts   # re-score, no model
      ovparts evaluate ... --devices 2                             # two processes, same report
    """
    from ..data import load_dataset
    from ..evaluation import evaluate, evaluate_predictions
    from ..output_files import check_output_dir, check_output_file

    if out is not None:  # a report that cannot be written is refused now, not after the evaluation
        check_output_file(out)
    placement = {
        "devices": devices,
        "num_nodes": num_nodes,
        "strategy": strategy,
        "accelerator": accelerator_of(device),
        "num_workers": workers,
        "progress": not no_progress,
    }
    if from_predictions is not None:
        if model_name is not None or save_predictions is not None or resume:
            raise ConfigError(
                "--from-predictions scores saved predictions without a model; drop --model, "
                "--save-predictions and --resume."
            )
        report = evaluate_predictions(
            from_predictions, average, dataset=dataset, root=root, boundary=boundary, **placement
        )
    else:
        if model_name is None or dataset is None or root is None:
            raise ConfigError("Give --model, --dataset and --root (or --from-predictions FOLDER).")
        if save_predictions is not None:
            check_output_dir(save_predictions, "--save-predictions")
        data = load_dataset(dataset, root, split=split, strict=strict)
        distributed = devices * num_nodes > 1
        # Ranks load on the host; Lightning then moves each replica to its own device.
        segmenter = build_segmenter(model_name, weights, model_config, "cpu" if distributed else device)
        report = evaluate(
            segmenter,
            data,
            protocol=protocol,
            average=average,
            boundary=boundary,
            trained_on=trained_on,
            limit=limit,
            strict=strict,
            save_predictions=save_predictions,
            resume=resume,
            extra_config={
                "model": model_name,
                "weights": weights,
                "model_config": model_config,
                "device": device,
            },
            **placement,
        )
    if not rank_zero():
        return
    click.echo(report.table(per_class=per_class))
    if report.counts.get("errors"):
        click.echo(
            f"Skipped {report.counts['errors']} bad file(s); see 'skipped' in the JSON report or use --strict."
        )
    if out is not None:
        report.save(out)
        click.echo(f"Report written to {out}")


def accelerator_of(device: str) -> str:
    """Lightning's accelerator for a ``--device`` kind: ``cuda`` / ``cuda:1`` -> gpu, ``cpu`` -> cpu."""
    kind = device.split(":", 1)[0].lower()
    return "gpu" if kind == "cuda" else kind


@click.group("data")
def data_group() -> None:
    """Inspect benchmark datasets: expected layouts, download links, validation."""


@data_group.command("info")
@click.argument("name")
def data_info(name: str) -> None:
    """Print the official download links and the expected layout of a benchmark."""
    from ..data import info_text

    click.echo(info_text(name))


@data_group.command("check")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--dataset", "name", required=True, help="Benchmark name, e.g. pascal_part_116.")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "train", "all"]))
@click.option("--deep", is_flag=True, help="Also decode every label file and check sizes and ids (slower).")
def data_check(root: Path, name: str, split: str, deep: bool) -> None:
    """Validate a dataset layout and say what is missing or broken."""
    from ..data import check_dataset

    splits = ("train", "val") if split == "all" else (split,)
    result = check_dataset(name, root, splits=splits, deep=deep)
    click.echo(result.text())
    if not result.ok:
        sys.exit(EXIT_USER_ERROR)


COMMANDS = (evaluate_command, data_group)
"""What ``ovparts.cli`` registers: ``for command in COMMANDS: main.add_command(command)``."""
