"""Each method's training loss, behind one call: ``loss_function(model)(model, batch, vocabulary, ignore_index)``.

The training engine knows nothing about any method: every model implements the contract's

    def training_loss(self, batch: dict[str, Tensor], vocab: Vocabulary, ignore_index: int, **options) -> dict

(see :class:`ovparts.models.base.PartSegModel`). A model from outside ovparts that cannot carry one may
have an adapter registered here under its name (:func:`register_loss`). A recipe's
``model.loss_options`` are passed as keyword arguments. The result is a dict of scalar tensors with the
optimised sum under ``"total"``; every other entry is logged.

The batch holds ``pixel_values`` (B, 3, H, W) normalised as ``model.preprocess`` says, ``part_labels`` and
``object_labels`` (B, H, W) ids into ``vocabulary.parts`` / ``vocabulary.objects`` with ``ignore_index``
where unlabelled or not trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import PartSegModel

Batch = dict[str, torch.Tensor]
LossFn = Callable[..., dict[str, torch.Tensor]]

_ADAPTERS: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator: the training loss of a model named ``name`` that has no ``training_loss`` of its own."""

    def decorate(function: LossFn) -> LossFn:
        _ADAPTERS[name] = function
        return function

    return decorate


def has_training_loss(model: nn.Module | type[nn.Module]) -> bool:
    """Whether ``model`` (or its class) implements ``training_loss`` (the base class's does not count)."""
    cls = model if isinstance(model, type) else type(model)
    own = getattr(cls, "training_loss", None)
    return callable(own) and own is not PartSegModel.training_loss


def loss_function(model: nn.Module) -> LossFn:
    """The model's own ``training_loss`` if it has one, else the adapter registered for its name."""
    if has_training_loss(model):
        return lambda m, batch, vocab, ignore, **options: m.training_loss(batch, vocab, ignore, **options)
    name = getattr(model, "name", type(model).__name__)
    if name not in _ADAPTERS:
        raise ConfigError(
            f"The model {name!r} has no training loss: give it a training_loss() method or register an "
            "adapter in ovparts.training.objectives."
        )
    return _ADAPTERS[name]
