"""Evaluation on many processes or GPUs: Lightning launches the ranks, ``torch.distributed`` sums the result.

Rank ``r`` of ``W`` scores the items ``r, r+W, ...`` (``ShardSampler``: no padding, no item twice), decoded by
loader workers while its model runs, through the very ``EvalRun.consume`` of the single-process loop. At the
end one ``all_reduce`` sums the evaluators' integer states and one ``all_gather_object`` collects the skip
logs, merged back into item order, so every rank holds the report a single process would have produced, bit
for bit. Errors met on a rank are gathered too and raised on every rank (the earliest item's), so a bad file
under ``strict`` cannot leave the other ranks waiting. Lightning's launcher re-runs the command once per extra
local rank and detects torchrun and SLURM, as for ``ovparts train``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..data.records import SkipLog
from ..errors import ConfigError, OvpartsError
from ..runtime.workers import loader_worker_options, refuse_reimported_main
from ..training.data import ShardSampler
from .choices import STRATEGIES
from .loop import EvalRun, ItemSet, add_skips, unbatch

LAST_LOOP_SECONDS: list[float] = []
"""Wall seconds of the last distributed run's scoring loop on this rank, from the start of its shard to the
end of the final all-reduce (so the slowest rank's time): process launch and model set-up left out. For
benchmarks (``benchmarks/evaluation_scaling.py``)."""


def rank_zero() -> bool:
    """Whether this process is the one that prints and writes (rank 0, or not distributed at all)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class EvaluationModule(pl.LightningModule):
    """Lightning's handle on an ``EvalRun``: one validation epoch over this rank's shard."""

    def __init__(self, run: EvalRun, indices: Sequence[int], num_workers: int) -> None:
        super().__init__()
        self.run = run
        self.indices = list(indices)
        self.num_workers = num_workers
        model = getattr(run.segmenter, "model", None)
        # Registered so that Lightning moves the network to this rank's device.
        self.network = model if isinstance(model, nn.Module) else None
        self.per_item: dict[int, list] = {}
        self.failures: list[tuple[int, Exception]] = []

    def val_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        return DataLoader(
            ItemSet(self.run.source, self.indices),
            batch_size=1,
            sampler=ShardSampler(len(self.indices), world, rank),
            collate_fn=unbatch,
            **loader_worker_options(self.num_workers, world),
        )

    def on_validation_epoch_start(self) -> None:
        self.started = time.perf_counter()

    def on_validation_start(self) -> None:
        if self.network is not None and hasattr(self.run.segmenter, "device"):
            self.run.segmenter.device = next(self.network.parameters()).device

    def transfer_batch_to_device(self, batch: list, device: torch.device, dataloader_idx: int) -> list:
        return batch  # items stay on the host: the segmenter moves its own input

    def validation_step(self, batch: list, batch_idx: int) -> None:
        for item in batch:
            self.run.skips = SkipLog()  # one log per item, merged in item order at the end
            try:
                self.run.consume(item)
            except OvpartsError as exc:
                self.failures.append((item.index, exc))
            self.per_item[item.index] = list(self.run.skips.items)

    def on_validation_epoch_end(self) -> None:
        evaluator = self.run.evaluator
        evaluator.all_reduce(
            lambda state: self.trainer.strategy.reduce(state.to(self.root_device), reduce_op="sum")
        )
        LAST_LOOP_SECONDS[:] = [time.perf_counter() - self.started]
        shards: list = [None] * self.trainer.world_size
        dist.all_gather_object(shards, (self.per_item, self.failures))
        per_item = {index: skips for shard_items, _ in shards for index, skips in shard_items.items()}
        failures = sorted((f for _, shard_failures in shards for f in shard_failures), key=lambda f: f[0])
        merged = evaluator.skips
        merged.items = list(getattr(self.run.source.dataset, "scan_skips", []))
        for index in sorted(per_item):
            try:
                add_skips(merged, per_item[index])
            except OvpartsError as exc:  # strict: the first bad file in item order, as one process says
                failures = sorted([*failures, (index, exc)], key=lambda f: f[0])
                break
        if failures:
            raise failures[0][1]

    @property
    def root_device(self) -> torch.device:
        return self.trainer.strategy.root_device


def run_distributed(
    run: EvalRun,
    indices: Sequence[int],
    *,
    devices: int,
    num_nodes: int,
    strategy: str,
    accelerator: str,
    num_workers: int,
    progress: bool,
) -> None:
    """Score ``indices`` over ``devices`` x ``num_nodes`` ranks; afterwards every rank's evaluator holds the
    summed accumulators and the merged skip log."""
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"Distributed evaluation runs on the {' or '.join(STRATEGIES)} strategy (one process per device), "
            f"not {strategy!r}."
        )
    refuse_reimported_main("A multi-process evaluation")
    with quiet_lightning():  # Lightning announces accelerators while the Trainer is built
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            precision="32-true",  # the segmenter applies its own precision
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            use_distributed_sampler=False,  # ShardSampler shards by rank itself
            num_sanity_val_steps=0,
        )
        trainer.validate(EvaluationModule(run, indices, num_workers), verbose=False)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's set-up chatter (available accelerators, tips, rank registration) is no news to the user."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
