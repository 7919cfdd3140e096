"""What the benchmark runs per model: the model at a size, a K-class vocabulary, and callables for
ovparts' forward, its image encoder, its text encoding, and the peer paths it is compared against.

Each case is built for one *variant* (``"ovparts"`` or one of the model's peers in :data:`PEERS`) so that a
peer needing its own model (transformers' CLIPSeg) is measured in a process holding only that model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..models.base import PartSegModel
from ..text import disk_cache
from ..vocabulary import Vocabulary

# The size each method is published at, and its tiny test counterpart (same code, a few layers).
SIZES: dict[str, dict[str, str]] = {
    "clipseg": {"native": "default", "tiny": "tiny"},
    "catseg": {"native": "vit-b", "tiny": "tiny"},
    "partclipseg": {"native": "default", "tiny": "tiny"},
    "partcatseg": {"native": "default", "tiny": "tiny"},
}
MODELS = tuple(SIZES)
# Every model's peers, the first being the one the speed goals are stated against:
# - "transformers": transformers' CLIPSeg used as documented (the image repeated and re-encoded per prompt);
# - "reference": the straightforward path, image re-encoded once per class and the whole cost volume at once;
# - "official": the official code's batching (image encoded once; PartCLIPSeg repeats the image activations
#   per class and keeps every attention map; CAT-Seg / PartCATSeg build the whole cost volume at once).
PEERS: dict[str, dict[str, str]] = {
    "clipseg": {"transformers": "transformers CLIPSeg (image re-encoded per prompt)"},
    "catseg": {
        "reference": "image re-encoded per class, unchunked cost volume",
        "official": "official: image encoded once, unchunked cost volume",
    },
    "partclipseg": {
        "reference": "image re-encoded per class",
        "official": "official: image encoded once, activations repeated per class",
    },
    "partcatseg": {
        "reference": "image re-encoded per class, unchunked cost volumes",
        "official": "official: image encoded once, unchunked cost volumes",
    },
}
# Peers that encode their prompts on every call (the others cache text embeddings, as ovparts does).
TEXT_PER_CALL = frozenset({"transformers"})
DEFAULT_CLASSES = (20, 116, 234)


def benchmark_vocabulary(k: int) -> Vocabulary:
    """K object-specific parts: a real benchmark's table, so generalized parts and objects are realistic.

    Pascal-Part-116 for K <= 116, ADE20K-Part-234 up to 234 (the first K of its parts), and beyond that the
    ADE table repeated with numbered objects.
    """
    if k < 1:
        raise ValueError("The number of classes must be at least 1.")
    source = Vocabulary.from_benchmark("pascal_part_116" if k <= 116 else "ade20k_part_234")
    if k == len(source):
        return source
    names = [f"{p.object}'s {p.part}" for p in source.parts]
    copy = 1
    while len(names) < k:
        names += [f"{p.object} {copy}'s {p.part}" for p in source.parts]
        copy += 1
    return Vocabulary.from_names(names[:k])


@dataclass
class Case:
    """Callables over pixel values; ``forward`` is what a user's Segmenter call costs per image."""

    model: PartSegModel | None
    vocab: Vocabulary
    image_size: tuple[int, int]
    forward: Callable[[torch.Tensor], Any]
    encoder: Callable[[torch.Tensor], Any] | None = None
    text: Callable[[], Any] | None = None
    # A peer run on fewer classes than K (to bound a slow reference) is scaled by K / measured classes.
    scale: float = 1.0
    classes_measured: int | None = None


def _clear_text_cache(model: PartSegModel) -> None:
    model.backbone._text_cache.clear()


def build_case(
    name: str,
    size: str,
    k: int,
    device: torch.device,
    variant: str = "ovparts",
    peer_classes: int | None = None,
    compile: bool = False,
) -> Case:
    """The case for ``name`` at ``size`` ("native" or "tiny") with K classes, ovparts' path or its peer's.

    ``compile`` runs ovparts' model through :func:`ovparts.runtime.compiling.compile_model` (peers stay eager)."""
    from ..models.registry import load_model

    if name not in SIZES:
        raise ValueError(f"No benchmark case for {name!r}; known: {', '.join(MODELS)}.")
    config = SIZES[name].get(size, size)
    vocab = benchmark_vocabulary(k)
    if variant != "ovparts" and variant not in PEERS[name]:
        raise ValueError(f"{name} has no peer {variant!r}; its peers: {', '.join(PEERS[name])}.")
    if variant == "transformers":
        return _transformers_clipseg_case(config, vocab, device, peer_classes)
    torch.manual_seed(0)
    model = load_model(name, config=config, device=str(device))
    image_size = model.preprocess.size
    if variant == "ovparts":
        if compile:
            from ..runtime.compiling import compile_model

            compile_model(model)
        return Case(
            model,
            vocab,
            image_size,
            forward=lambda pixels: model.predict(pixels, vocab),
            encoder=_encoder(name, model),
            text=_text(name, model, vocab),
        )
    return Case(model, vocab, image_size, forward=_peer_forward(name, variant, model, vocab))


def _peer_forward(name: str, variant: str, model: Any, vocab: Vocabulary) -> Callable[[torch.Tensor], Any]:
    """The peer's per-image call; text embeddings are computed here once, as every peer caches them."""
    from .references import (
        encode_image_per_class,
        official_partclipseg_forward,
        per_class_partclipseg_forward,
    )

    if name == "partclipseg":
        layout = model.layout(vocab)
        conditions = model.conditions(layout)
        if variant == "official":
            return lambda pixels: official_partclipseg_forward(model, pixels, conditions, layout)
        return lambda pixels: per_class_partclipseg_forward(model, pixels, conditions, layout)
    if variant == "reference":
        encode_image_per_class(model, len(vocab))
    if name == "partcatseg":
        return lambda pixels: model(pixels, vocab, class_chunk=0)
    texts = model.text_embeddings(vocab.part_texts(model.config.text_style))
    return lambda pixels: model(pixels, texts, class_chunk=0)


def _encoder(name: str, model: Any) -> Callable[[torch.Tensor], Any]:
    if name in ("catseg", "partcatseg"):
        return model.image_features
    return model.activations


def _text(name: str, model: Any, vocab: Vocabulary) -> Callable[[], Any]:
    """Encoding the vocabulary from scratch: what the first call with a new vocabulary pays once."""

    def run() -> Any:
        _clear_text_cache(model)
        with disk_cache.disabled():  # the encoder's cost, not a read of the on-disk text cache
            if name == "catseg":
                return model.text_embeddings(vocab.part_texts(model.config.text_style))
            if name == "partcatseg":
                return model.text_embeddings(vocab)
            if name == "partclipseg":
                return model.conditions(model.layout(vocab))
            return model.text_conditions(vocab.part_texts(model.config.text_style))

    return run


def _transformers_clipseg_case(
    config: str, vocab: Vocabulary, device: torch.device, peer_classes: int | None
) -> Case:
    from ..testing import RD64_REFINED, TINY_CLIPSEG
    from .references import transformers_clipseg

    architecture = TINY_CLIPSEG if config == "tiny" else RD64_REFINED
    side = 64 if config == "tiny" else 352
    torch.manual_seed(0)
    run = transformers_clipseg(architecture, device)
    prompts = vocab.part_texts()
    measured = len(prompts) if not peer_classes else min(peer_classes, len(prompts))
    return Case(
        None,
        vocab,
        (side, side),
        forward=lambda pixels: run(pixels, prompts[:measured]),
        scale=len(prompts) / measured,
        classes_measured=measured,
    )
