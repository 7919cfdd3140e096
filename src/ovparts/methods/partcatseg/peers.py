"""PartCATSeg's benchmark peers: the official head's batching and the per-class reference.

Both build the whole cost volumes at once (no class chunks); the reference also re-encodes the image once
per class. They compute ovparts' logits (tests check that).
"""

from __future__ import annotations

from ...benchmarking.cases import Case, PeerContext
from ...benchmarking.references import encode_image_per_class
from ...models.registry import BenchmarkPeer


def _official(context: PeerContext) -> Case:
    model, vocab = context.model, context.vocab
    return context.case(lambda pixels: model(pixels, vocab, class_chunk=0))


def _reference(context: PeerContext) -> Case:
    encode_image_per_class(context.model, len(context.vocab))
    return _official(context)


PEERS = {
    "reference": BenchmarkPeer("image re-encoded per class, unchunked cost volumes", _reference),
    "official": BenchmarkPeer("official: image encoded once, unchunked cost volumes", _official),
}
