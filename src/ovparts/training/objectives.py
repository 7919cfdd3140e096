"""Each method's training loss, behind one call: ``training_loss(model, batch, vocabulary, ignore_index)``.

The training engine knows nothing about any method. A model either implements

    def training_loss(self, batch: dict[str, Tensor], vocabulary: Vocabulary, ignore_index: int) -> dict

itself, or a small adapter registered here by the model's registry name maps the engine's batch onto the
model's own loss method. A recipe's ``model.loss_options`` are passed to either as keyword arguments. Either way the result is a dict of scalar tensors with the optimised sum under
``"total"``; every other entry is logged. Adding a method to training = its recipe file + one of the two.

The batch holds ``pixel_values`` (B, 3, H, W) normalised as ``model.preprocess`` says, ``part_labels`` and
``object_labels`` (B, H, W) ids into ``vocabulary.parts`` / ``vocabulary.objects`` with ``ignore_index``
where unlabelled or not trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..losses import clipseg_baseline_loss, one_hot_targets, weighted_bce
from ..vocabulary import Vocabulary

Batch = dict[str, torch.Tensor]
LossFn = Callable[..., dict[str, torch.Tensor]]

_ADAPTERS: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator: the training loss of the model registered under ``name``."""

    def decorate(function: LossFn) -> LossFn:
        _ADAPTERS[name] = function
        return function

    return decorate


def loss_function(model: nn.Module) -> LossFn:
    """The model's own ``training_loss`` if it has one, else the adapter registered for its name."""
    own = getattr(model, "training_loss", None)
    if callable(own):
        return lambda m, batch, vocab, ignore, **options: m.training_loss(batch, vocab, ignore, **options)
    name = getattr(model, "name", type(model).__name__)
    if name not in _ADAPTERS:
        raise ConfigError(
            f"The model {name!r} has no training loss: give it a training_loss() method or register an "
            "adapter in ovparts.training.objectives."
        )
    return _ADAPTERS[name]


def nearest_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) ids resized by nearest neighbour to the logits' size (a no-op when they match)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


@register_loss("clipseg")
def clipseg_loss(
    model: nn.Module, batch: Batch, vocabulary: Vocabulary, ignore_index: int, background_weight: float = 0.05
) -> dict:
    """OV-PARTS CLIPSeg baseline (official: part-clipseg ``baselines/clipseg.py``): BCE over T parts + the non-object channel (w 0.05).

    Without a non-object vector the loss is the plain BCE over the T part channels, unlabelled pixels being
    all-zero targets, which is how the original CLIPSeg is trained.
    """
    conditions = model.text_conditions(vocabulary.part_texts(model.config.text_style))
    background = model.non_object_embedding
    if background is not None:
        conditions = torch.cat([conditions, background.to(conditions.dtype)])
    logits = model(batch["pixel_values"], conditions).logits
    labels = nearest_labels(batch["part_labels"], logits.shape[-2:])
    if background is not None:
        loss = clipseg_baseline_loss(logits.float(), labels, ignore_index, background_weight)
    else:
        targets, _ = one_hot_targets(labels, logits.shape[1], ignore_index)
        loss = weighted_bce(logits.float().permute(0, 2, 3, 1), targets)
    return {"total": loss}


@register_loss("partclipseg")
def partclipseg_loss(model: nn.Module, batch: Batch, vocabulary: Vocabulary, ignore_index: int) -> dict:
    """PartCLIPSeg (official: part-clipseg ``baselines/partclipseg.py``): the model's own ``loss`` returns every term and the total."""
    return model.loss(
        batch["pixel_values"], vocabulary, batch["part_labels"], batch["object_labels"], ignore_index
    )


@register_loss("catseg")
def catseg_loss(
    model: nn.Module, batch: Batch, vocabulary: Vocabulary, ignore_index: int, faithful: bool = False
) -> dict:
    """CAT-Seg (official: CAT-Seg ``cat_seg_model.py:CATSeg.forward``): BCE on one-hot labels over the part classes.

    ``faithful=True`` keeps ignore pixels inside the mean with all-zero targets, as the official code (and
    the published recipes) do; the default leaves them out.
    """
    texts = vocabulary.part_texts(model.config.text_style)
    loss = model.loss(batch["pixel_values"], batch["part_labels"], texts, ignore_index, faithful=faithful)
    return {"total": loss}


@register_loss("partcatseg")
def partcatseg_loss(model: nn.Module, batch: Batch, vocabulary: Vocabulary, ignore_index: int) -> dict:
    """PartCATSeg (official: part-catseg ``baselines/partcatseg.py``): the model's ``loss`` with part and object labels, as PartCLIPSeg."""
    terms = model.loss(
        batch["pixel_values"], vocabulary, batch["part_labels"], batch["object_labels"], ignore_index
    )
    return terms if isinstance(terms, dict) else {"total": terms}
