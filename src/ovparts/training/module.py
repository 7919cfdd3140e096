"""The LightningModule: any ovparts model, its own loss, the recipe's optimiser, and in-training evaluation.

Lightning owns the loop, devices, precision, DDP/FSDP and checkpoints; this class only says what one step is.
Evaluation runs the very code of ``ovparts.evaluate`` (protocol predictions -> ``Evaluator`` -> named rule)
inside Lightning's validation loop, so every rank scores its shard and the accumulators are summed before the
rule is applied: the numbers logged during training are the numbers ``ovparts evaluate`` would print.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from ..evaluation.evaluator import Evaluator
from ..evaluation.protocols import predict
from ..vocabulary import Vocabulary
from .config import EvalSection, OptimSection, ScheduleSection
from .data import ClassMapping
from .objectives import loss_function
from .optim import build_optimizer, build_scheduler

LOGGED_METRICS = ("mIoU", "mIoU-seen", "mIoU-unseen", "h-IoU")


class PartSegModule(pl.LightningModule):
    """Trains ``model`` on ``mapping.vocabulary`` and evaluates it on ``val_vocabulary``."""

    def __init__(
        self,
        model: nn.Module,
        mapping: ClassMapping,
        val_vocabulary: Vocabulary | None,
        optim: OptimSection,
        schedule: ScheduleSection,
        max_steps: int,
        grad_clip: float | None = None,
        evaluation: EvalSection | None = None,
        loss_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.mapping = mapping
        self.val_vocabulary = val_vocabulary
        self.optim_config = optim
        self.schedule_config = schedule
        self.max_steps = max_steps
        self.grad_clip = grad_clip
        self.evaluation = evaluation or EvalSection()
        self.loss_options = dict(loss_options or {})
        self.loss_fn = loss_function(model)
        self.last_metrics: dict[str, float] = {}
        self._evaluator: Evaluator | None = None
        self._segmenter = None
        self._last_time: float | None = None
        self._throughput: float | None = None

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.loss_fn(
            self.model, batch, self.mapping.vocabulary, self.mapping.ignore_index, **self.loss_options
        )
        total = terms["total"]
        size = batch["pixel_values"].shape[0]
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=size)
        for name, value in terms.items():
            if name != "total" and torch.is_tensor(value) and value.numel() == 1:
                self.log(f"train/{name}", value.detach().float(), batch_size=size)
        return total

    def on_train_batch_end(self, outputs: Any, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Images per second over all ranks, smoothed, for the progress bar and the loggers."""
        now = time.perf_counter()
        if self._last_time is not None:
            images = batch["pixel_values"].shape[0] * self.trainer.world_size
            rate = images / max(now - self._last_time, 1e-9)
            self._throughput = rate if self._throughput is None else 0.9 * self._throughput + 0.1 * rate
            self.log("train/img_per_s", self._throughput, prog_bar=True, batch_size=1)
        self._last_time = now
        optimizer = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if optimizer is not None:
            self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optim_config)
        scheduler = build_scheduler(optimizer, self.max_steps, self.schedule_config)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """Full-model L2-norm clipping (the official ``CLIP_TYPE: full_model``), FSDP-aware."""
        if not self.grad_clip:
            return
        wrapped = self.trainer.strategy.model
        if hasattr(wrapped, "clip_grad_norm_"):  # FSDP: the norm must be taken over every shard
            wrapped.clip_grad_norm_(self.grad_clip)
            return
        self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    # ------------------------------------------------------------------ evaluation
    def on_validation_epoch_start(self) -> None:
        from ..inference import Segmenter

        # Boundary IoU is left out: the logged metrics do not use it and it costs a filter pass per record.
        self._evaluator = Evaluator(
            self.val_vocabulary, self.evaluation.protocol, self.evaluation.average, boundary="none"
        )
        self._segmenter = Segmenter(self.model)

    def validation_step(self, batch: list, batch_idx: int) -> None:
        evaluator = self._evaluator
        for sample, image in batch:
            if not sample.regions:
                continue
            predictions = predict(evaluator.protocol, self._segmenter, image, sample, evaluator.vocabulary)
            evaluator.process(sample, predictions)

    def on_validation_epoch_end(self) -> None:
        evaluator = self._evaluator
        evaluator.all_reduce(
            lambda state: self.trainer.strategy.reduce(state.to(self.device), reduce_op="sum")
        )
        metrics = evaluator.evaluate().metrics
        self.last_metrics = {k: float(metrics.get(k, math.nan)) for k in LOGGED_METRICS}
        for key, value in self.last_metrics.items():
            self.log(f"val/{key}", value, prog_bar=key == "mIoU-seen", batch_size=1)
        self._segmenter = None
