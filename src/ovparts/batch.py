"""Batch segmentation: many images, one process or many (``ovparts segment DIR_OR_GLOB --devices N``).

The plan (``segment_outputs.plan_outputs``: output names, what ``--skip-existing`` may skip, what must not be
overwritten) is made before any output is written, from the same files on every rank, so all ranks agree on
it. Rank r of W then segments targets r, r+W, ... with loader workers decoding the photos, each output
written atomically as in one process; the files are the same as one process writes. One progress bar on rank
0 counts the images of every rank (a one-number all-reduce after each step, every rank taking the same number
of steps).
"""

from __future__ import annotations

import glob
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import OvpartsError, VocabularyError
from .methods import DEFAULT_MODEL
from .segment_outputs import OUTPUT_SUFFIXES, RECORD_KEY, Target, file_sha256, make_record, plan_outputs
from .vocabulary import Vocabulary

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
"""What a folder given as input contributes (our own outputs, ``*.parts.png`` and ``*.overlay.png``, never)."""


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files as given, folders as their images (sorted, not recursive), anything else as a glob pattern."""
    images: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                str(p)
                for p in path.iterdir()
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not p.name.startswith(".")
                and not p.name.endswith(OUTPUT_SUFFIXES)
            )
            if not found:
                raise OvpartsError(f"The folder {item} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
            images += found
        elif path.exists() or not glob.has_magic(item):
            images.append(item)
        else:
            found = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise OvpartsError(f"No file matches {item!r}.")
            images += found
    return images


@dataclass
class BatchResult:
    """What a batch did, summed over every rank."""

    total: int
    written: int = 0
    skipped: int = 0
    failures: int = 0
    messages: list[str] = field(default_factory=list)


@dataclass
class BatchJob:
    """Everything a rank needs to segment and write its targets."""

    targets: list[Target]
    vocabulary: Vocabulary
    settings: dict[str, Any]
    model_name: str
    object_mask: str | None = None
    echo: Callable[[str], None] | None = None

    def load(self, position: int) -> tuple[int, Any, str | None]:
        """(position, RGB image or None, error) of a target: runs in loader workers."""
        from .imageio import load_image

        target = self.targets[position]
        if target.skip:
            return position, None, None
        try:
            return position, load_image(target.image), None
        except OvpartsError as err:
            return position, None, str(err)

    def run(self, segmenter: Any, position: int, picture: Any, error: str | None) -> str:
        """Segment and write one target: ``"skipped"``, ``"written"`` or ``"failed"`` (message printed)."""
        target = self.targets[position]
        if target.skip:
            return "skipped"
        try:
            if error is not None:
                raise OvpartsError(error)
            result = segmenter(picture, self.vocabulary, object_mask=self.object_mask)
        except OvpartsError as err:
            _write_error(f"Error: {err}")
            return "failed"
        write_outputs(target, picture, result, self.vocabulary, self.settings, self.model_name)
        if self.echo is not None:
            self.echo(
                f"Wrote {target.paths[0].parent / target.stem}.parts.png, .overlay.png and .json "
                f"({len(result.summary())} parts found)."
            )
        return "written"


def _write_error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def write_outputs(
    target: Target, picture: Any, result: Any, vocabulary: Vocabulary, settings: dict, model_name: str
) -> None:
    """The three outputs of one image. A pending record first (it claims the two PNGs), the complete one
    last: its presence and the PNGs' recorded hashes mark the image finished for ``--skip-existing``."""
    from .output_files import write_png, write_text
    from .visualize import label_png, no_part_value, overlay

    parts_path, overlay_path, json_path = target.paths
    report = {
        "image": str(target.image),
        "size": [picture.width, picture.height],
        "model": model_name,
        "weights": settings["weights"],
        "protocol": result.protocol,
        "vocabulary": vocabulary.format(),
        "no_part": no_part_value(len(vocabulary)),
        "no_part_share": float((result.part_map < 0).mean()),
        "parts": result.summary(),
    }
    write_text(json_path, json.dumps({RECORD_KEY: make_record(target, settings, False)}, indent=2))
    write_png(parts_path, label_png(result.part_map, len(vocabulary)))
    write_png(overlay_path, overlay(picture, result.part_map, vocabulary))
    report[RECORD_KEY] = make_record(target, settings, True)
    write_text(json_path, json.dumps(report, indent=2))


def segment_batch(
    images: Sequence[str],
    vocabulary: Vocabulary,
    *,
    model: str = DEFAULT_MODEL,
    weights: str | None = None,
    config: str | None = None,
    revision: str | None = None,
    out: str | Path = "ovparts-out",
    object_mask: str | None = None,
    device: str = "cpu",
    background_threshold: float | None = None,
    skip_existing: bool = False,
    compile: bool = False,  # noqa: A002  (torch's own name for it)
    devices: int = 1,
    num_nodes: int = 1,
    num_workers: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> BatchResult:
    """Segment ``images`` (files, folders or glob patterns) into parts and write each one's outputs to ``out``.

    The Python side of ``ovparts segment``: the same outputs, names and ``skip_existing`` rules.
    ``devices`` x ``num_nodes`` > 1 shards the images over that many processes (Lightning's DDP launcher, as
    ``ovparts train``; torchrun and SLURM are detected), each with ``num_workers`` loader processes (default
    0 in one process, 2 per rank otherwise). ``echo`` receives one line per image written when given.
    """
    from .inference import Segmenter
    from .models.registry import load_model
    from .output_files import check_output_dir
    from .validation import check_background_threshold

    images = expand_inputs(images)
    if object_mask is not None and len(images) > 1:
        raise VocabularyError("--object-mask applies to a single image; run one image at a time with it.")
    check_background_threshold(background_threshold)
    for value, option in ((devices, "devices"), (num_nodes, "num_nodes")):
        if not isinstance(value, int) or value < 1:
            raise OvpartsError(f"{option} must be a positive whole number, got {value!r}.")
    target_dir = check_output_dir(out)
    settings = {
        "model": model,
        "weights": weights or ("random:" + config if config else "default"),
        "revision": revision,
        "vocabulary": vocabulary.format(),
        "background_threshold": background_threshold,
        "object_mask_sha256": file_sha256(object_mask) if object_mask is not None else None,
    }
    protected = [Path(p) for p in images] + ([Path(object_mask)] if object_mask else [])
    targets = plan_outputs(tuple(images), target_dir, protected, settings, skip_existing)
    distributed = devices * num_nodes > 1
    network = load_model(
        model, weights=weights, config=config, device="cpu" if distributed else device, revision=revision
    )
    segmenter = Segmenter(network, background_threshold=background_threshold, compile=compile)
    job = BatchJob(targets, vocabulary, settings, model, object_mask, echo)
    workers = (2 if distributed else 0) if num_workers is None else num_workers
    if not distributed:
        return _run_local(job, segmenter, workers, progress)
    from .distributed_batch import run_batch_distributed

    return run_batch_distributed(job, segmenter, devices, num_nodes, device, workers, progress)


def _items(job: BatchJob, workers: int) -> Iterator[tuple[int, Any, str | None]]:
    if workers <= 0:
        for position in range(len(job.targets)):
            yield job.load(position)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(TargetSet(job), batch_size=None, num_workers=workers)
    yield from loader


class TargetSet:
    """The targets of a job as a map-style dataset of ``BatchJob.load`` items."""

    def __init__(self, job: BatchJob, positions: Sequence[int] | None = None) -> None:
        self.job = job
        self.positions = list(range(len(job.targets))) if positions is None else list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        position = self.positions[index]
        if position < 0:  # padding: every rank takes the same number of steps
            return -1, None, None
        return self.job.load(position)


def _run_local(job: BatchJob, segmenter: Any, workers: int, progress: bool) -> BatchResult:
    from tqdm import tqdm

    from .output_files import terminate_cleanly

    result = BatchResult(len(job.targets))
    with terminate_cleanly(), tqdm(total=len(job.targets), disable=not progress, unit="image") as bar:
        for position, picture, error in _items(job, workers):
            tally(result, job.run(segmenter, position, picture, error))
            bar.update(1)
    return result


def tally(result: BatchResult, outcome: str) -> None:
    if outcome == "written":
        result.written += 1
    elif outcome == "skipped":
        result.skipped += 1
    elif outcome == "failed":
        result.failures += 1
