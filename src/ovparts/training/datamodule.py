"""The LightningDataModule: benchmark readers -> seeded training stream and sharded evaluation split."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from ..data.registry import canonical_name, load_dataset
from ..errors import ConfigError
from ..models.base import Preprocess
from ..runtime.workers import loader_worker_options
from ..vocabulary import Vocabulary
from .config import DataSection
from .data import (
    ShardSampler,
    StreamSampler,
    TrainingSet,
    ValidationSet,
    collate_samples,
    ensure_dataset,
    training_classes,
)


class PartDataModule(pl.LightningDataModule):
    """Training data of a recipe; the class mapping comes from the benchmark table, so the model can be
    built before any file is read (and before a synthetic dataset is written on rank 0)."""

    def __init__(
        self,
        data: DataSection,
        preprocess: Preprocess,
        seed: int,
        accumulate: int = 1,
        eval_limit: int | None = None,
        evaluate: bool = True,
    ) -> None:
        super().__init__()
        self.config = data
        self.preprocess = preprocess
        self.seed = seed
        self.accumulate = accumulate
        self.eval_limit = eval_limit
        self.evaluate = evaluate
        self.benchmark = canonical_name(data.dataset)
        self.vocabulary = Vocabulary.from_benchmark(self.benchmark)
        self.mapping = training_classes(self.vocabulary, data.classes, data.objects)
        self.train_reader = None
        self.val_reader = None

    def prepare_data(self) -> None:
        """Runs once per node before ``setup``: writes the synthetic dataset a smoke recipe asks for."""
        ensure_dataset(self.benchmark, self.config.root, self.config.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_reader is None:
            self.train_reader = load_dataset(self.benchmark, self.config.root, split=self.config.train_split)
        if self.val_reader is None and (self.evaluate or stage == "validate"):
            self.val_reader = load_dataset(self.benchmark, self.config.root, split=self.config.val_split)

    def per_device_batch(self, world_size: int) -> int:
        batch = self.config.batch_size
        if batch % world_size:
            raise ConfigError(
                f"data.batch_size {batch} (the global batch) does not split evenly over {world_size} processes."
            )
        return batch // world_size

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = trainer.world_size, trainer.global_rank
        per_device = self.per_device_batch(world)
        # Called after a checkpoint is restored: the stream continues where the saved step left it.
        start = trainer.global_step * self.accumulate
        dataset = TrainingSet(
            self.train_reader, self.mapping, self.config.augment, self.preprocess, self.seed
        )
        return DataLoader(
            dataset,
            batch_size=per_device,
            sampler=StreamSampler(per_device, world, rank, start),
            **loader_worker_options(self.config.num_workers, world),
            persistent_workers=False,
            drop_last=False,
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, list):  # validation: (Sample, image) pairs stay on the host for the evaluator
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def val_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        dataset = ValidationSet(self.val_reader, self.eval_limit)
        return DataLoader(
            dataset,
            batch_size=1,
            sampler=ShardSampler(len(dataset), world, rank),
            **loader_worker_options(min(self.config.num_workers, 2), world),
            collate_fn=collate_samples,
        )
