"""CAT-Seg's benchmark peers: the official head's layout and batching, and the per-class reference.

Both run the head as the official code lays it out (``models/official_layout.py``: padding classes at every
pixel, guidance concatenated per class, Swin roll and partition) on the whole cost volume at once (no class
chunks); the reference also re-encodes the image once per class, as a model queried one class at a time
does. They compute ovparts' logits (tests check that).
"""

from __future__ import annotations

from ...benchmarking.cases import Case, PeerContext
from ...benchmarking.references import encode_image_per_class
from ...models.official_layout import use_official_layout
from ...models.registry import BenchmarkPeer


def _official(context: PeerContext) -> Case:
    model = context.model
    use_official_layout(model)
    texts = model.encode_vocabulary(context.vocab)
    return context.case(lambda pixels: model(pixels, texts, class_chunk=0))


def _reference(context: PeerContext) -> Case:
    encode_image_per_class(context.model, len(context.vocab))
    return _official(context)


PEERS = {
    "reference": BenchmarkPeer("image re-encoded per class, official head layout, unchunked", _reference),
    "official": BenchmarkPeer(
        "official structure: image encoded once, official head layout, unchunked", _official
    ),
}
