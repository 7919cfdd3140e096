"""``segment_batch`` on many ranks: Lightning launches them (as ``ovparts train`` and ``ovparts evaluate``).

Rank r of W takes targets r, r+W, ...; the shards are padded to one length so that every rank takes the same
number of steps and the per-step all-reduce of the progress count never waits for a rank that finished.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from .batch import BatchJob, BatchResult, TargetSet
from .evaluation.distributed import quiet_lightning
from .runtime.workers import loader_worker_options, refuse_reimported_main


def padded_shard(length: int, world: int, rank: int) -> list[int]:
    """Positions ``rank, rank+world, ...`` of ``length``, padded with -1 to ``ceil(length / world)``."""
    shard = list(range(rank, length, world))
    return shard + [-1] * (-(-length // world) - len(shard))


class BatchModule(pl.LightningModule):
    """One predict epoch over this rank's targets; rank 0 draws the bar of the whole job."""

    def __init__(self, job: BatchJob, segmenter: Any, workers: int, progress: bool) -> None:
        super().__init__()
        self.job = job
        self.segmenter = segmenter
        self.network = segmenter.model if isinstance(getattr(segmenter, "model", None), nn.Module) else None
        self.workers = workers
        self.progress = progress
        self.counts = torch.zeros(3, dtype=torch.int64)  # written, skipped, failed on this rank
        self.bar = None

    def predict_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        shard = padded_shard(len(self.job.targets), world, rank)
        return DataLoader(
            TargetSet(self.job, shard), batch_size=None, **loader_worker_options(self.workers, world)
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # a photo for the Segmenter, which prepares its own input

    def on_predict_start(self) -> None:
        if self.network is not None:
            self.segmenter.device = next(self.network.parameters()).device
        if self.progress and self.trainer.is_global_zero:
            from tqdm import tqdm

            self.bar = tqdm(total=len(self.job.targets), unit="image")

    def predict_step(self, batch: Any, batch_idx: int) -> None:
        position, picture, error = batch
        step = torch.zeros(3, dtype=torch.int64)
        if position >= 0:
            outcome = self.job.run(self.segmenter, position, picture, error)
            step[("written", "skipped", "failed").index(outcome)] = 1
        self.counts += step
        # every rank steps alike (padded shards), so this never waits on a rank that has finished
        done = self.trainer.strategy.reduce(step.sum().reshape(1).to(self.device), reduce_op="sum")
        if self.bar is not None:
            self.bar.update(int(done))

    def on_predict_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.counts = self.trainer.strategy.reduce(self.counts.to(self.device), reduce_op="sum").cpu()


def run_batch_distributed(
    job: BatchJob, segmenter: Any, devices: int, num_nodes: int, device: str, workers: int, progress: bool
) -> BatchResult:
    """Segment ``job`` over ``devices`` x ``num_nodes`` ranks; every rank returns the summed result."""
    refuse_reimported_main("A multi-process segmentation")
    kind = device.split(":", 1)[0].lower()
    with quiet_lightning():
        trainer = pl.Trainer(
            accelerator="gpu" if kind == "cuda" else kind,
            devices=devices,
            num_nodes=num_nodes,
            strategy="ddp",
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,  # ours counts every rank's images
            use_distributed_sampler=False,
        )
        module = BatchModule(job, segmenter, workers, progress)
        trainer.predict(module, return_predictions=False)
    written, skipped, failed = (int(v) for v in module.counts)
    return BatchResult(len(job.targets), written, skipped, failed)
