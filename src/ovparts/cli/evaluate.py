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

from ..errors import EXIT_USER_ERROR
from ..evaluation.rules import BOUNDARY_MODES, PROTOCOLS, RULES
from ..vocabulary import BENCHMARKS


def build_segmenter(model: str, weights: str | None, config: str | None, device: str) -> Any:
    """Model name -> ``Segmenter``; a seam the tests replace with a fake model."""
    import ovparts

    network = ovparts.load_model(model, weights=weights, config=config, device=device)
    return ovparts.Segmenter(network)


@click.command("evaluate")
@click.option(
    "--model", "model_name", required=True, help="Model name, e.g. clipseg, catseg, partclipseg, partcatseg."
)
@click.option(
    "--weights", default=None, help="Checkpoint folder or hub id (default: the model's own default)."
)
@click.option("--config", "model_config", default=None, help="Model config name, e.g. 'tiny' for tests.")
@click.option("--dataset", required=True, help=f"Benchmark: {', '.join(BENCHMARKS)}.")
@click.option(
    "--root",
    required=True,
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
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--save-predictions",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for predicted part maps (uint16 PNG, 65535 = no part).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def evaluate_command(
    model_name: str,
    weights: str | None,
    model_config: str | None,
    dataset: str,
    root: Path,
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
    no_progress: bool,
) -> None:
    """Score a model on a benchmark and print seen / unseen / harmonic mIoU."""
    from ..data import load_dataset
    from ..evaluation import evaluate
    from ..outputs import check_output_dir, check_output_file

    if out is not None:  # a report that cannot be written is refused now, not after the evaluation
        check_output_file(out)
    if save_predictions is not None:
        check_output_dir(save_predictions, "--save-predictions")
    data = load_dataset(dataset, root, split=split, strict=strict)
    segmenter = build_segmenter(model_name, weights, model_config, device)
    report = evaluate(
        segmenter,
        data,
        protocol=protocol,
        average=average,
        boundary=boundary,
        trained_on=trained_on,
        limit=limit,
        strict=strict,
        progress=not no_progress,
        save_predictions=save_predictions,
        extra_config={
            "model": model_name,
            "weights": weights,
            "model_config": model_config,
            "device": device,
        },
    )
    click.echo(report.table(per_class=per_class))
    if report.counts.get("errors"):
        click.echo(
            f"Skipped {report.counts['errors']} bad file(s); see 'skipped' in the JSON report or use --strict."
        )
    if out is not None:
        report.save(out)
        click.echo(f"Report written to {out}")


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
