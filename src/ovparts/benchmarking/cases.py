"""What the benchmark runs per model: the model at a size, a K-class vocabulary, and callables for
ovparts' forward, its image encoder, its text encoding, and the peer paths it is compared against.

Every fact about a method (its benchmark sizes, its peers and how to build them) comes from its registry
entry; here only the contract (``predict``, ``encode_image``, ``encode_vocabulary``) is called. Each case is
built for one *variant* (``"ovparts"`` or one of the model's peers) so that a peer needing its own model
(transformers' CLIPSeg) is measured in a process holding only that model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..models.base import PartSegModel
from ..models.registry import BenchmarkPeer, model_spec, model_specs
from ..text import disk_cache
from ..vocabulary import Vocabulary

DEFAULT_CLASSES = (20, 116, 234)


def benchmark_models() -> tuple[str, ...]:
    """Every registered method, in registration order (what ``ovparts benchmark`` measures by default)."""
    return tuple(model_specs())


def benchmark_peers(name: str) -> dict[str, BenchmarkPeer]:
    """``name``'s peers, variant -> peer; the first is the one the speed goals are stated against."""
    return dict(model_spec(name).peers)


def __getattr__(attribute: str) -> Any:
    """``MODELS`` and ``PEERS`` (variant descriptions per model), read from the registry when asked for."""
    if attribute == "MODELS":
        return benchmark_models()
    if attribute == "PEERS":
        return {m: {v: p.description for v, p in benchmark_peers(m).items()} for m in benchmark_models()}
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


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


@dataclass(frozen=True)
class PeerContext:
    """What a peer's ``build`` gets: ovparts' model at the benchmark size (None for a peer with its own
    model), the vocabulary, the named config of the size, the device, and the cap on measured classes."""

    model: PartSegModel | None
    vocab: Vocabulary
    config: str
    device: torch.device
    peer_classes: int | None = None

    def case(self, forward: Callable[[torch.Tensor], Any]) -> Case:
        """A peer case running ``forward`` on pixels sized for ovparts' model."""
        if self.model is None:
            raise ValueError("A peer with its own model must size its case itself.")
        return Case(self.model, self.vocab, self.model.preprocess.size, forward=forward)


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

    spec = model_spec(name)
    config = spec.sizes.get(size, size)
    vocab = benchmark_vocabulary(k)
    peer = spec.peers.get(variant)
    if variant != "ovparts" and peer is None:
        raise ValueError(f"{name} has no peer {variant!r}; its peers: {', '.join(spec.peers)}.")
    if peer is not None and peer.own_model:
        return peer.build(PeerContext(None, vocab, config, device, peer_classes))
    torch.manual_seed(0)
    model = load_model(name, config=config, device=str(device))
    if peer is not None:
        return peer.build(PeerContext(model, vocab, config, device, peer_classes))
    if compile:
        from ..runtime.compiling import compile_model

        compile_model(model)
    return Case(
        model,
        vocab,
        model.preprocess.size,
        forward=lambda pixels: model.predict(pixels, vocab),
        encoder=model.encode_image,
        text=_text(model, vocab),
    )


def _text(model: PartSegModel, vocab: Vocabulary) -> Callable[[], Any]:
    """Encoding the vocabulary from scratch: what the first call with a new vocabulary pays once."""

    def run() -> Any:
        model.clear_vocabulary_cache()
        with disk_cache.disabled():  # the encoder's cost, not a read of the on-disk text cache
            return model.encode_vocabulary(vocab)

    return run
