"""Shared machinery of the benchmark readers: root resolution, scanning once, loading lazily, skip counting.

A reader scans its layout when built (cheap: directory listings and JSON), so ``len()`` is known for progress
bars, and decodes label maps only while iterating, so a whole benchmark never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import DatasetError
from ..vocabulary import Vocabulary, benchmark_table
from .records import Region, Sample, Skip, SkipLog


@dataclass(frozen=True)
class LayoutEntry:
    """One path the official layout needs, relative to the dataset directory."""

    path: str
    kind: str  # "dir" or "file"
    what: str
    splits: tuple[str, ...] = ("train", "val")
    alternatives: tuple[str, ...] = ()  # other accepted locations of the same thing

    def find(self, root: Path) -> Path | None:
        """The first of ``path`` and ``alternatives`` that exists under ``root``."""
        for relative in (self.path, *self.alternatives):
            target = root / relative
            if target.is_dir() if self.kind == "dir" else target.is_file():
                return target
        return None


class BenchmarkReader:
    """Base of the four readers; subclasses implement ``_scan`` and ``_load``.

    Parameters
    ----------
    root:
        The dataset directory (e.g. ``.../PascalPart116``) or its parent (``$DETECTRON2_DATASETS``).
    split:
        ``"val"`` (the zero-shot test records) or ``"train"``.
    strict:
        Raise ``DatasetError`` at the first bad file instead of skipping and counting it.
    """

    benchmark: ClassVar[str]
    dirname: ClassVar[str]
    layout: ClassVar[tuple[LayoutEntry, ...]]
    record_unit: ClassVar[str]

    def __init__(self, root: str | Path, split: str = "val", strict: bool = False) -> None:
        if split not in ("train", "val"):
            raise DatasetError(f"Unknown split {split!r}; use 'train' or 'val'.")
        self.name = self.benchmark
        self.split = split
        self.root = resolve_root(Path(root), self.dirname)
        self.table = benchmark_table(self.benchmark)
        self.vocabulary = Vocabulary.from_benchmark(self.benchmark)
        self.ignore_value = int(self.table["ignore_label"])
        self.num_parts = len(self.vocabulary.parts)
        self.num_objects = len(self.vocabulary.objects)
        self.skips = SkipLog(strict)
        problems = missing_layout(self.root, self.layout, split)
        if problems:
            raise DatasetError(
                f"{self.root} is not a {self.table['name']} layout: {problems[0]} "
                f"(run 'ovparts data info {self.benchmark}' for the expected layout)."
            )
        self._items: list[Any] = self._scan()
        self._scan_skips = list(self.skips.items)

    # ------------------------------------------------------------------ subclass hooks
    def _scan(self) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load(self, item: Any) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ iteration
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Sample]:
        self.skips.items = list(self._scan_skips)
        for item in self._items:
            try:
                sample = self._load(item)
            except DatasetError as exc:
                if self.skips.strict:
                    raise
                self.skips.items.append(_as_skip(exc, item))
                continue
            sample.regions = self._keep_labelled(sample)
            yield sample

    @property
    def scan_skips(self) -> list[Skip]:
        """What the layout scan left out (every iteration's skip log starts with these)."""
        return list(self._scan_skips)

    def load(self, index: int) -> tuple[Sample | None, list[Skip]]:
        """Item ``index`` as iteration yields it, and what it left out, without touching ``self.skips``.

        For loaders that run in worker processes or on several ranks: a bad file is returned as a skip (never
        raised), a sample keeps only its labelled records, and the caller adds the skips to its own log.
        """
        item = self._items[index]
        try:
            sample = self._load(item)
        except DatasetError as exc:
            return None, [_as_skip(exc, item)]
        log = SkipLog()
        sample.regions = _labelled(sample, log)
        return sample, log.items

    def __getitem__(self, index: int) -> Sample:
        """Random access (training samplers): one image, records without part labels dropped.

        Bad files raise ``DatasetError`` here; iteration is where skipping and counting happens.
        """
        sample = self._load(self._items[index])
        sample.regions = self._keep_labelled(sample)
        return sample

    def _keep_labelled(self, sample: Sample) -> list[Region]:
        return _labelled(sample, self.skips)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, split={self.split!r}, images={len(self)})"

    # ------------------------------------------------------------------ helpers for subclasses
    def _object_name(self, object_id: int) -> str:
        return self.vocabulary.objects[object_id]


def _labelled(sample: Sample, log: SkipLog) -> list[Region]:
    """Drop records whose region holds no part label (the official mapper returns None for them)."""
    kept = []
    for region in sample.regions:
        if np.any(region.mask & (sample.part_map >= 0)):
            kept.append(region)
        else:
            log.no_parts(sample.image_path, f"{sample.key}:{region.name}")
    return kept


def _as_skip(exc: DatasetError, item: Any) -> Skip:
    """Our messages start with the file name; keep it apart so reports can list files."""
    message = str(exc)
    path, sep, reason = message.partition(": ")
    return Skip(path, reason, "error") if sep else Skip(str(item), message, "error")


def resolve_root(root: Path, dirname: str) -> Path:
    """Accept the dataset directory itself or the folder that contains it."""
    if (root / dirname).is_dir():
        return root / dirname
    return root


def missing_layout(root: Path, layout: tuple[LayoutEntry, ...], split: str | None) -> list[str]:
    """One sentence per required path that is absent, for a split (or every split when ``None``)."""
    if not root.is_dir():
        return [f"the directory {root} does not exist"]
    problems = []
    for entry in layout:
        if split is not None and split not in entry.splits:
            continue
        if entry.find(root) is None:
            also = "".join(f" or {a}" for a in entry.alternatives)
            problems.append(f"missing {entry.kind} {entry.path}{also} ({entry.what})")
    return problems


def visible_files(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with the given suffixes, sorted, without macOS ``._*`` resource forks (the README deletes them)."""
    lowered = tuple(s.lower() for s in suffixes)
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith("._") and p.suffix.lower() in lowered
    )
