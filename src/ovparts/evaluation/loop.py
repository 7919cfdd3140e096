"""The evaluation loop, in two halves so that data can be decoded in loader workers while the model runs.

``ItemSource.item(index)`` (worker side, no model) loads one image's ground truth, the run's saved prediction
when one may be reused, and otherwise the checked RGB image; what it leaves out travels with the item as
skips. ``EvalRun.consume(item)`` (model side) adds the skips to the run's log, predicts where needed, saves
the prediction and feeds the ``Evaluator``. One process and many ranks run exactly this code, so they produce
the same accumulators; the order of the skip log is kept by item index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..data.io import read_rgb
from ..data.records import EvalDataset, Sample, Skip, SkipLog
from ..errors import DatasetError, ImageError, OvpartsError
from .evaluator import Evaluator, Predictions
from .predictions import PredictionStore, Refused
from .protocols import ObjectPredictor, predict


@dataclass
class Item:
    """One image of the split as a worker prepared it."""

    index: int
    sample: Sample | None
    skips: list[Skip] = field(default_factory=list)
    saved: Predictions | Refused | None = None
    image: np.ndarray | None = None


def reason_of(path: Path | str, exc: Exception) -> str:
    """Our messages start with the file name; the skip log keeps the path and the reason apart."""
    message, prefix = str(exc), f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def random_access(dataset: EvalDataset) -> bool:
    """Whether the dataset offers ``load(index)`` (the benchmark readers and ``InMemoryDataset`` do)."""
    return callable(getattr(dataset, "load", None))


@dataclass
class ItemSource:
    """What a loader worker needs (no model): the dataset, the prediction store and the protocol."""

    dataset: EvalDataset
    protocol: str
    store: PredictionStore | None = None
    reuse: bool = False

    def item(self, index: int, sample: Sample | None = None) -> Item:
        if sample is None:
            sample, skips = self.dataset.load(index)
        else:
            skips = []
        item = Item(index, sample, list(skips))
        if sample is None or not sample.regions:
            return item
        if self.reuse and self.store is not None:
            item.saved = self.store.load(sample, self.protocol)
            if item.saved is not None:
                return item  # the image was fine when the prediction was made: no need to decode it
        try:
            image = read_rgb(sample.image_path)
        except DatasetError as exc:
            item.skips.append(Skip(str(sample.image_path), reason_of(sample.image_path, exc)))
            return item
        if image.shape[:2] != sample.size:
            item.skips.append(Skip(str(sample.image_path), "image and label map sizes differ."))
            return item
        item.image = image
        return item


class ItemSet(Dataset):
    """``indices`` of a split as ``Item``s, for a ``DataLoader`` whose workers decode them."""

    def __init__(self, source: ItemSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Item:
        return self.source.item(self.indices[position])


def unbatch(items: list[Item]) -> list[Item]:
    return items


def add_skips(log: SkipLog, skips: Sequence[Skip]) -> None:
    """Add skips to a log in order; a strict log raises at the first error, as iterating a reader does."""
    for skip in skips:
        if skip.kind == "error":
            log.error(skip.path, skip.reason)
        else:
            log.items.append(skip)


@dataclass
class EvalRun:
    """One evaluation: where items come from, the segmenter (None: scoring saved predictions only) and the
    evaluator. ``skips`` collects what the consumed items left out, item by item."""

    source: ItemSource
    segmenter: Any
    evaluator: Evaluator
    object_predictor: ObjectPredictor | None = None
    skips: SkipLog = field(default_factory=SkipLog)
    restrict: bool = True  # Oracle-Obj runs only the present objects' parts where classes are independent

    def consume(self, item: Item) -> None:
        """Score one item: its saved prediction, or the segmenter's (saved when the run keeps predictions)."""
        add_skips(self.skips, item.skips)
        sample = item.sample
        if sample is None or not sample.regions:
            return
        path, store = sample.image_path, self.source.store
        if isinstance(item.saved, Refused):
            add_skips(self.skips, [Skip(str(path), item.saved.reason)])
            return
        if item.saved is not None:
            self.evaluator.process(sample, item.saved)
            return
        if item.image is None:
            return  # the image could not be used; its skip is in item.skips
        if self.segmenter is None:
            raise OvpartsError(
                f"{store.folder if store else 'The predictions folder'} has no prediction for {path}: the run "
                "that saved them did not get that far; continue it with --resume, then score it."
            )
        vocabulary = self.evaluator.vocabulary
        protocol = self.evaluator.protocol
        try:
            predictions = predict(
                protocol, self.segmenter, item.image, sample, vocabulary, self.object_predictor, self.restrict
            )
        except ImageError as exc:
            reason = reason_of(path, exc)
            add_skips(self.skips, [Skip(str(path), reason)])
            if store is not None:
                store.write_refusal(sample, reason)
            return
        self.evaluator.process(sample, predictions)
        if store is not None:
            store.write(sample, predictions, protocol)


def items(source: ItemSource, indices: Sequence[int], num_workers: int = 0) -> Iterator[Item]:
    """The items of ``indices`` in order: read here, or decoded by ``num_workers`` loader processes."""
    if not random_access(source.dataset):  # a plain iterable dataset keeps its own skip log
        for index, sample in enumerate(source.dataset):
            if index >= len(indices):
                return
            yield source.item(index, sample)
        return
    if num_workers <= 0:
        for index in indices:
            yield source.item(index)
        return
    loader = DataLoader(
        ItemSet(source, indices), batch_size=1, num_workers=num_workers, collate_fn=unbatch, shuffle=False
    )
    for batch in loader:
        yield from batch


def run_local(
    run: EvalRun, indices: Sequence[int], progress: bool, description: str, num_workers: int
) -> None:
    """Consume ``indices`` in this process, updating one progress bar."""
    bar = progress_bar(len(indices), progress, description)
    try:
        for item in items(run.source, indices, num_workers):
            bar.update(1)
            run.consume(item)
    finally:
        bar.close()


class _NullBar:
    def update(self, _: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, description: str):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", leave=False)
