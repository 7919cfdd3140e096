"""Training on PyTorch Lightning: recipes, the LightningModule and DataModule, and ``train(recipe)``.

>>> from ovparts.training import load_recipe, train
>>> recipe = load_recipe("tiny", ["trainer.max_steps=50"])                 # doctest: +SKIP
>>> result = train(recipe)                                                 # doctest: +SKIP

Lightning is an optional dependency (``pip install 'ovparts[train]'``); the recipe code imports without it.
"""

from __future__ import annotations

from importlib import import_module

from .config import Recipe, load_recipe, recipe_from_dict

_LAZY = {
    "train": "ovparts.training.runner",
    "TrainResult": "ovparts.training.runner",
    "build_model": "ovparts.training.runner",
    "PartSegModule": "ovparts.training.module",
    "PartDataModule": "ovparts.training.datamodule",
    "register_loss": "ovparts.training.objectives",
}

__all__ = ["Recipe", "load_recipe", "recipe_from_dict", *_LAZY]


def __getattr__(name: str):
    # Lightning is imported only when training actually starts.
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovparts.training' has no attribute {name!r}")
