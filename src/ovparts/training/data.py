"""Training and validation data over the benchmark readers.

Reproducibility is the design constraint here. A run reads an endless, seeded stream of samples: stream
position ``s`` is image ``perm_e(s mod N)`` of epoch ``e = s // N``, augmented with a generator seeded by
``(seed, s)``. Optimiser step ``k`` consumes a fixed window of that stream, split across ranks, so what a step
sees depends only on the seed, the step and the global batch: not on the number of workers, not on whether the
run was killed and resumed. That is what makes a resumed run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.io import read_rgb
from ..data.records import Sample
from ..errors import ConfigError, DatasetError
from ..models.base import Preprocess
from ..vocabulary import Part, Vocabulary
from .transforms import Compose, Triple, resize_triple

MAX_RESAMPLES = 20


@dataclass(frozen=True)
class ClassMapping:
    """The vocabulary a model trains on and how benchmark ids map into it (-1 = not trained on)."""

    vocabulary: Vocabulary
    part_ids: np.ndarray  # (P_benchmark,) -> training part id or -1
    object_ids: np.ndarray  # (O_benchmark,) -> training object id or -1

    @property
    def ignore_index(self) -> int:
        """255 as the official Pascal loaders while it cannot collide with a class id, else 65535."""
        largest = max(len(self.vocabulary.parts), len(self.vocabulary.objects))
        return 255 if largest < 255 else 65535


def training_classes(
    vocabulary: Vocabulary, classes: str, only_objects: list[str] | None = None
) -> ClassMapping:
    """``"seen"``: the zero-shot training split (unseen objects and their parts become ignore); ``"all"``.

    ``only_objects`` narrows either to the parts of the named objects (everything else becomes ignore).
    """
    if only_objects is not None:
        unknown = sorted(set(only_objects) - set(vocabulary.objects))
        if unknown:
            raise ConfigError(f"data.objects names {unknown[0]!r}, which is not an object of this benchmark.")
    if classes == "all" and only_objects is None:
        identity_parts = np.arange(len(vocabulary.parts), dtype=np.int64)
        identity_objects = np.arange(len(vocabulary.objects), dtype=np.int64)
        return ClassMapping(vocabulary, identity_parts, identity_objects)
    allowed = set(vocabulary.objects if only_objects is None else only_objects)
    if classes == "seen":
        allowed -= set(vocabulary.unseen_objects)
    objects = [o for o in vocabulary.objects if o in allowed]
    object_index = {o: i for i, o in enumerate(objects)}
    kept = [p for p in vocabulary.parts if (p.seen or classes == "all") and p.object in object_index]
    if not kept:
        raise ConfigError("The training classes hold no part: check data.classes and data.objects.")
    parts = [Part(i, p.object, p.part, True) for i, p in enumerate(kept)]
    train_vocab = Vocabulary(
        parts, objects, official_order=vocabulary.official_order, name=vocabulary.name, ignore_label=None
    )
    part_ids = np.full(len(vocabulary.parts), -1, dtype=np.int64)
    part_ids[[p.id for p in kept]] = np.arange(len(kept))
    object_ids = np.array([object_index.get(o, -1) for o in vocabulary.objects], dtype=np.int64)
    return ClassMapping(train_vocab, part_ids, object_ids)


def remap(labels: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Benchmark ids (-1 = none) -> training ids, -1 for everything not trained on."""
    out = np.full(labels.shape, -1, dtype=np.int64)
    labelled = labels >= 0
    out[labelled] = mapping[labels[labelled]]
    return out


class StreamSampler(Sampler[int]):
    """Endless stream positions for one rank, starting at micro-batch ``start``.

    Micro-batch ``m`` covers positions ``[m*b*W, (m+1)*b*W)``; rank ``r`` takes ``[m*b*W + r*b, ... + b)``.
    It has no length: training ends at ``max_steps``, never at the end of an epoch.
    """

    def __init__(self, batch_size: int, world_size: int = 1, rank: int = 0, start: int = 0) -> None:
        self.batch_size, self.world_size, self.rank, self.start = batch_size, world_size, rank, start

    def __iter__(self) -> Iterator[int]:
        micro = self.start
        width = self.batch_size * self.world_size
        while True:
            first = micro * width + self.rank * self.batch_size
            yield from range(first, first + self.batch_size)
            micro += 1


class TrainingSet(Dataset):
    """Stream position -> augmented, normalised sample with training-id label maps."""

    def __init__(
        self, reader, mapping: ClassMapping, augment: list[dict], preprocess: Preprocess, seed: int
    ) -> None:
        if len(reader) == 0:
            raise DatasetError(f"The training split of {reader.name} at {reader.root} holds no images.")
        self.reader = reader
        self.mapping = mapping
        self.augment = Compose(augment)
        self.preprocess = preprocess
        self.seed = int(seed)
        self.mean = np.asarray(preprocess.mean, dtype=np.float32) * 255
        self.std = np.asarray(preprocess.std, dtype=np.float32) * 255

    def __len__(self) -> int:
        return len(self.reader)

    @lru_cache(maxsize=4)  # noqa: B019 - one permutation per epoch, a few epochs alive at a time
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.reader))

    def index_of(self, position: int) -> int:
        epoch, offset = divmod(int(position), len(self.reader))
        return int(self._permutation(epoch)[offset])

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        index = self.index_of(position)
        for attempt in range(MAX_RESAMPLES):
            rng = np.random.default_rng([self.seed, int(position), attempt])
            if attempt:  # detectron2 re-samples a random image when the mapper drops one
                index = int(rng.integers(len(self.reader)))
            item = self._load(index, rng)
            if item is not None:
                return item
        raise DatasetError(
            f"{MAX_RESAMPLES} images in a row had no trainable part pixel in {self.reader.root}; "
            "check data.classes and the dataset."
        )

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        try:
            sample: Sample = self.reader[index]
            image = read_rgb(sample.image_path)
        except DatasetError:
            return None
        if image.shape[:2] != sample.size:
            return None
        ignore = self.mapping.ignore_index
        parts = remap(sample.part_map, self.mapping.part_ids)
        objects = remap(sample.object_map, self.mapping.object_ids)
        triple = self.augment(Triple(image, parts, objects), rng)
        triple = resize_triple(triple, self.preprocess.size)
        if not np.any(triple.parts >= 0):  # the official mapper drops all-ignore samples
            return None
        pixels = (triple.image.astype(np.float32) - self.mean) / self.std
        return {
            "pixel_values": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
            "part_labels": torch.from_numpy(np.where(triple.parts >= 0, triple.parts, ignore)),
            "object_labels": torch.from_numpy(np.where(triple.objects >= 0, triple.objects, ignore)),
            "index": torch.tensor(index),
        }


class ValidationSet(Dataset):
    """(sample, RGB image) pairs for the evaluator; one image per item since sizes differ."""

    def __init__(self, reader, limit: int | None = None) -> None:
        self.reader = reader
        self.length = len(reader) if limit is None else min(limit, len(reader))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Sample, np.ndarray] | None:
        try:
            sample = self.reader[index]
            return sample, read_rgb(sample.image_path)
        except DatasetError:
            return None


class ShardSampler(Sampler[int]):
    """Rank ``r`` takes items ``r, r+W, ...``: no padding, so no image is scored twice."""

    def __init__(self, length: int, world_size: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def collate_samples(items: list) -> list:
    """Validation items stay Python objects (the evaluator takes NumPy maps of any size)."""
    return [item for item in items if item is not None]


def ensure_dataset(name: str, root: str | Path, synthetic: dict | None) -> None:
    """Write the synthetic dataset a recipe asks for when it is not on disk yet (tests, smoke runs)."""
    if synthetic is None:
        return
    from ..data.registry import READERS, canonical_name
    from ..data.synthetic import write_synthetic

    key = canonical_name(name)
    if (Path(root) / READERS[key].dirname).is_dir():
        return
    options = dict(synthetic)
    if "size" in options:
        options["size"] = tuple(options["size"])
    write_synthetic(key, root, **options)
