"""What a dataset reader hands to evaluation and training: one image, its label maps and its records.

The official loaders produce one *record* per evaluated object (Pascal: image x object class, ADE20K: object
instance, PartImageNet: image). Several records often share one image, so a reader yields one ``Sample`` per
image that lists its records as ``Region``s; the evaluator can then run the model once per image and still
score every record on its own, exactly as the official code counts pixels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import DatasetError
from ..vocabulary import Vocabulary

IGNORE = -1
"""In memory every label map uses -1 for "no label" (ignore / background), whatever the file encoding."""


@dataclass
class Region:
    """One evaluation record: the pixels of an object (class region or instance) and its object id.

    ``mask`` is an HxW bool array. ``object_id`` indexes ``vocabulary.objects``.
    """

    object_id: int
    mask: np.ndarray
    name: str = ""


@dataclass
class Sample:
    """One image with its ground truth, in the benchmark's label ids.

    ``part_map`` and ``object_map`` are HxW int64 arrays with -1 where there is no label. ``regions`` are the
    evaluation records on this image; records without any part label have already been dropped.
    """

    key: str
    image_path: Path
    part_map: np.ndarray
    object_map: np.ndarray
    regions: list[Region] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the label maps, which equals the image size."""
        return int(self.part_map.shape[0]), int(self.part_map.shape[1])

    def region_gt(self, region: Region) -> np.ndarray:
        """The part ground truth of one record: part labels inside the region, -1 elsewhere."""
        return np.where(region.mask, self.part_map, IGNORE)


@dataclass(frozen=True)
class Skip:
    """A file or record left out, with the reason in one sentence."""

    path: str
    reason: str
    kind: str = "error"


class SkipLog:
    """Collects what a reader left out; with ``strict=True`` the first bad input raises instead.

    Two kinds are kept apart: ``error`` (bad input: missing or unreadable files, wrong sizes, ids outside the
    table) and ``no_part_labels`` (records whose object has no labelled part pixel, which the official loaders
    replace by a random other record and we simply drop). Only errors make ``strict`` fail.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.items: list[Skip] = []

    def error(self, path: str | Path, reason: str) -> None:
        if self.strict:
            raise DatasetError(f"{path}: {reason}")
        self.items.append(Skip(str(path), reason, "error"))

    def no_parts(self, path: str | Path, record: str) -> None:
        self.items.append(Skip(str(path), f"record {record} has no part labels", "no_part_labels"))

    @property
    def errors(self) -> list[Skip]:
        return [s for s in self.items if s.kind == "error"]

    def counts(self) -> dict[str, int]:
        return dict(Counter(s.kind for s in self.items))

    def __len__(self) -> int:
        return len(self.items)


@runtime_checkable
class EvalDataset(Protocol):
    """What ``ovparts.evaluate`` needs from a dataset: a vocabulary and an iterable of samples."""

    name: str
    split: str
    vocabulary: Vocabulary
    skips: SkipLog

    def __iter__(self) -> Iterator[Sample]: ...

    def __len__(self) -> int: ...


class InMemoryDataset:
    """A dataset made of samples already in memory, for tests, notebooks and custom data."""

    def __init__(
        self, samples: Sequence[Sample], vocabulary: Vocabulary, name: str = "in_memory", split: str = "val"
    ) -> None:
        self.samples = list(samples)
        self.vocabulary = vocabulary
        self.name = name
        self.split = split
        self.skips = SkipLog()

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def scan_skips(self) -> list[Skip]:
        return []

    def load(self, index: int) -> tuple[Sample | None, list[Skip]]:
        """Random access as the benchmark readers offer it (their ``load``): the sample and no skips."""
        return self.samples[index], []


def regions_by_class(object_map: np.ndarray, object_ids: Iterable[int] | None = None) -> list[Region]:
    """One region per object class present in an object map (the Pascal-Part-116 record definition)."""
    ids = np.unique(object_map) if object_ids is None else np.asarray(list(object_ids))
    return [Region(int(i), object_map == i, f"object={int(i)}") for i in ids if i >= 0]
