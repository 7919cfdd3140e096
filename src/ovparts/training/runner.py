"""One call from a recipe to a trained, exported model: ``train(recipe)``.

This is where the recipe's sections meet Lightning's ``Trainer``: devices, nodes and strategy (DDP/FSDP,
torchrun and SLURM environments are detected by Lightning itself), precision, periodic atomic checkpoints,
CSV/TensorBoard loggers, the progress bar, resume, and the final ``save_pretrained`` export that
``ovparts segment --weights`` loads.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, Strategy

from ..errors import ConfigError
from ..models.base import PartSegModel
from ..models.registry import load_model
from ..runtime.workers import refuse_reimported_main
from .checkpoints import AtomicCheckpointIO, periodic_checkpoint, resume_path
from .config import ModelSection, Recipe, TrainerSection
from .datamodule import PartDataModule
from .module import PartSegModule
from .scopes import apply_scope

EXPORT_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainResult:
    """What a finished run left behind."""

    out_dir: Path
    export_dir: Path | None
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    trainable_parameters: int = 0
    model: PartSegModel | None = None  # the trained model, in memory (every rank holds its replica)
    global_rank: int = 0


def build_model(section: ModelSection) -> PartSegModel:
    """The model a recipe starts from, in training mode, with its trainable scope applied."""
    model = load_model(section.name, weights=section.weights, config=section.config)
    model.train()
    apply_scope(model, section.scope)
    return model


def resolve_precision(precision: str) -> str:
    """``auto``: bf16 mixed precision where the GPU supports it, else full fp32 (CPU, older GPUs)."""
    if precision != "auto":
        return str(precision)
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_strategy(trainer: TrainerSection) -> str | Strategy:
    """``ddp`` / ``fsdp`` with the options our models need; other Lightning strategy names pass through."""
    name = str(trainer.strategy).lower()
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=trainer.find_unused_parameters)
    if name == "fsdp":
        on_cpu = trainer.accelerator == "cpu" or (
            trainer.accelerator == "auto" and not torch.cuda.is_available()
        )
        if on_cpu:
            raise ConfigError("FSDP needs GPUs (Lightning runs it on CUDA only); on CPU use --strategy ddp.")
        # use_orig_params: frozen and trainable parameters may share a wrapped module (CLIP + adapters).
        return FSDPStrategy(use_orig_params=True, state_dict_type="full")
    return name


def build_loggers(names: list[str], out_dir: Path) -> list[Logger]:
    loggers: list[Logger] = []
    for name in names:
        if name == "csv":
            loggers.append(CSVLogger(out_dir, name="logs"))
        elif name == "tensorboard":
            has_tb = any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))
            if has_tb:
                loggers.append(TensorBoardLogger(out_dir, name="tensorboard", default_hp_metric=False))
        else:
            raise ConfigError(f"Unknown logger {name!r}; use csv or tensorboard.")
    return loggers


def build_trainer(recipe: Recipe, out_dir: Path, enable_validation: bool) -> pl.Trainer:
    section = recipe.trainer
    evaluation = recipe.eval
    callbacks: list[pl.Callback] = []  # the module logs train/lr itself (LearningRateMonitor needs a logger)
    if section.checkpoint_every:
        callbacks.append(periodic_checkpoint(out_dir / CHECKPOINT_DIR, section.checkpoint_every))
    if section.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    in_loop = enable_validation and 0 < evaluation.every < section.max_steps
    refuse_reimported_main("Training")
    return pl.Trainer(
        default_root_dir=out_dir,
        accelerator=section.accelerator,
        devices=section.devices,
        num_nodes=section.num_nodes,
        strategy=build_strategy(section),
        precision=resolve_precision(section.precision),
        max_steps=section.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=section.accumulate_grad_batches,
        deterministic=section.deterministic,
        log_every_n_steps=section.log_every_n_steps,
        val_check_interval=evaluation.every * section.accumulate_grad_batches if in_loop else None,
        check_val_every_n_epoch=None,
        limit_val_batches=None if in_loop else 0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our samplers shard by rank themselves (see data.py)
        logger=build_loggers(section.loggers, out_dir) or False,
        callbacks=callbacks,
        enable_checkpointing=bool(section.checkpoint_every),
        enable_progress_bar=section.progress_bar,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )


def export_model(trainer: pl.Trainer, module: PartSegModule, recipe: Recipe, folder: Path) -> None:
    """``save_pretrained`` on rank 0; under FSDP the full weights are gathered first (a collective)."""
    if isinstance(trainer.strategy, FSDPStrategy):
        state = trainer.strategy.lightning_module_state_dict()
        if trainer.is_global_zero:
            model = build_model(recipe.model)
            model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
            model.save_pretrained(folder)
    elif trainer.is_global_zero:
        module.model.save_pretrained(folder)
    trainer.strategy.barrier()


def train(recipe: Recipe, resume: str | bool | None = None, export: bool = True) -> TrainResult:
    """Train as the recipe says; ``resume`` = True continues from the run's last checkpoint."""
    out_dir = recipe.output_dir
    pl.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    model = build_model(recipe.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    evaluate_enabled = recipe.eval.every > 0
    datamodule = PartDataModule(
        recipe.data,
        model.preprocess,
        recipe.trainer.seed,
        recipe.trainer.accumulate_grad_batches,
        recipe.eval.limit,
        evaluate_enabled,
    )
    module = PartSegModule(
        model,
        datamodule.mapping,
        datamodule.vocabulary,
        recipe.optim,
        recipe.schedule,
        recipe.trainer.max_steps,
        recipe.trainer.grad_clip,
        recipe.eval,
        recipe.model.loss_options,
    )
    trainer = build_trainer(recipe, out_dir, evaluate_enabled)
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
    ckpt = resume_path(resume, out_dir / CHECKPOINT_DIR)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    metrics: dict[str, Any] = {}
    if evaluate_enabled:
        trainer.limit_val_batches = 1.0  # in-loop evaluation may be off; the final one always runs
        trainer.validate(module, datamodule=datamodule, verbose=False)
        metrics = dict(module.last_metrics)
    export_dir = out_dir / EXPORT_DIR if export else None
    if export_dir is not None:
        export_model(trainer, module, recipe, export_dir)
    metrics = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
    return TrainResult(
        out_dir, export_dir, trainer.global_step, metrics, trainable, module.model, trainer.global_rank
    )
