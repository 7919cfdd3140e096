"""A complete ovparts method from outside the package: the worked example of CONTRIBUTING.md.

This file is never imported as part of the test suite: ``test_toy_method.py`` copies it into a temporary
folder as the module ``ovparts_toy``, beside a ``.dist-info`` declaring it in the ``ovparts.methods`` entry
point group, exactly what ``pip install`` of a third-party package leaves behind. Everything ovparts knows
about the method then comes from the :class:`~ovparts.models.registry.ModelSpec` registered at the bottom.

The method is small but real: a two-layer strided conv encoder gives a D-dimensional feature per pixel
(at 1/4 resolution), a bag-of-characters embedding gives a D-dimensional vector per part name, and a part's
logit is their scaled cosine similarity plus a bias. It trains (per-pixel BCE), caches its vocabulary,
runs its per-class head in chunks and round-trips through ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ovparts.benchmarking.cases import Case, PeerContext
from ovparts.models.base import ModelConfig, PartLogits, PartSegModel, Preprocess, SegmenterDefaults
from ovparts.models.chunking import check_class_chunk, resolve_class_chunk
from ovparts.models.losses import nearest_labels, one_hot_targets, weighted_bce
from ovparts.models.registry import BenchmarkPeer, register_model
from ovparts.text import disk_cache
from ovparts.text.cache import TextEmbeddingCache
from ovparts.vocabulary import Vocabulary

ALPHABET = "abcdefghijklmnopqrstuvwxyz' "


# ---------------------------------------------------------------------------------------------- config
@dataclass
class ToyConfig(ModelConfig):
    """The toy's architecture and inference options (config.json holds exactly these fields)."""

    image_size: int = 64
    width: int = 32
    embed_dim: int = 32
    background_threshold: float = 0.5
    class_chunk: int | str | None = None  # per-class head: classes run together (None/0: all, "auto")

    def __post_init__(self) -> None:
        check_class_chunk(self.class_chunk)


CONFIGS = {
    "default": {},
    "tiny": {"image_size": 32, "width": 8, "embed_dim": 8},
}


# ---------------------------------------------------------------------------------------------- text
class BagOfCharacters(nn.Module):
    """Part name -> counts of each character of ``ALPHABET`` -> linear map to ``embed_dim``.

    Embeddings are cached per vocabulary while no gradient is recorded: in memory (keyed by the weights'
    version, so a training step never serves stale vectors) and on disk for other processes (keyed by the
    weights' bytes); ``text_encoder_calls`` counts the encodings actually run.
    """

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(len(ALPHABET), embed_dim)
        self.cache = TextEmbeddingCache()
        self.text_encoder_calls = 0

    def clear_text_cache(self) -> None:
        self.cache.clear()

    def forward(self, texts: tuple[str, ...]) -> torch.Tensor:
        weight = self.project.weight
        recording = torch.is_grad_enabled() and weight.requires_grad
        key = (texts, weight._version + self.project.bias._version)
        cached = None if recording else self.cache.get(key)
        if cached is not None:
            return cached
        disk_key = None
        if not recording and disk_cache.enabled():  # shared by every process, keyed by the weights' bytes
            fingerprint = disk_cache.fingerprint_tensors(self.project.named_parameters(), ALPHABET.encode())
            disk_key = disk_cache.entry_key(fingerprint, texts, None, False, str(weight.dtype))
            stored = disk_cache.load(disk_key)
            if stored is not None:
                self.cache.put(key, stored.to(weight.device))
                return self.cache.get(key)
        self.text_encoder_calls += 1
        counts = torch.zeros(len(texts), len(ALPHABET), dtype=weight.dtype, device=weight.device)
        for row, text in enumerate(texts):
            for char in text.lower():
                if char in ALPHABET:
                    counts[row, ALPHABET.index(char)] += 1
        embeddings = self.project(counts)
        if not recording:
            embeddings = embeddings.detach()
            self.cache.put(key, embeddings)
            if disk_key is not None:
                disk_cache.store(disk_key, embeddings)
        return embeddings


# ---------------------------------------------------------------------------------------------- model
class ToySeg(PartSegModel):
    """Per-pixel features against per-part vectors: one logit map per vocabulary part, no background."""

    name = "toy"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, config.width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(config.width, config.width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(config.width, config.embed_dim, 1),
        )
        self.text = BagOfCharacters(config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(10.0))
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess((self.config.image_size, self.config.image_size))

    @property
    def segmenter_defaults(self) -> SegmenterDefaults:
        return SegmenterDefaults(background_threshold=self.config.background_threshold)

    def compile_targets(self) -> list[nn.Module]:
        return [self.encoder]

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, D, H/4, W/4) unit-length pixel features."""
        return F.normalize(self.encoder(pixel_values), dim=1)

    def encode_vocabulary(self, vocab: Vocabulary) -> torch.Tensor:
        """(K, D) unit-length part vectors, cached per vocabulary."""
        return F.normalize(self.text(tuple(vocab.part_texts())), dim=-1)

    def logits(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
        """(B, K, H/4, W/4) part logits; the classes run ``class_chunk`` at a time."""
        features, classes = self.encode_image(pixel_values), self.encode_vocabulary(vocab)
        per_class = features[:, :1].numel() * features.element_size()
        chunk = resolve_class_chunk(self.config.class_chunk, len(classes), per_class, features.device)
        maps = [
            torch.einsum("bdhw,kd->bkhw", features, classes[start : start + chunk])
            for start in range(0, len(classes), chunk)
        ]
        return torch.cat(maps, dim=1) * self.logit_scale + self.logit_bias

    def predict(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> PartLogits:
        return PartLogits(parts=self.logits(pixel_values, vocab))

    def training_loss(
        self, batch: dict[str, torch.Tensor], vocab: Vocabulary, ignore_index: int, **options: object
    ) -> dict[str, torch.Tensor]:
        """Per-pixel BCE over the parts; unlabelled pixels are all-zero targets."""
        if options:
            raise TypeError(f"The toy method takes no loss options, got {sorted(options)}.")
        logits = self.logits(batch["pixel_values"], vocab)
        labels = nearest_labels(batch["part_labels"], logits.shape[-2:])
        targets, _ = one_hot_targets(labels, len(vocab), ignore_index)
        bce = weighted_bce(logits.float().permute(0, 2, 3, 1), targets)
        return {"total": bce, "bce": bce.detach()}


# ---------------------------------------------------------------------------------------------- peer
def _per_class_case(context: PeerContext) -> Case:
    """The naive way: the image re-encoded for every class (what the encode-once path avoids)."""
    model, vocab = context.model, context.vocab

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        classes = model.encode_vocabulary(vocab)
        maps = [torch.einsum("bdhw,d->bhw", model.encode_image(pixels), row) for row in classes]
        return torch.stack(maps, dim=1) * model.logit_scale + model.logit_bias

    return context.case(forward)


# ---------------------------------------------------------------------------------------------- entry
SPEC = register_model(
    ToySeg.name,
    ToySeg,
    CONFIGS,
    description="A toy method: conv features against bag-of-characters part vectors.",
    config_notes={"default": "random weights, 64 px", "tiny": "random weights, 32 px (tests)"},
    peers={"per-class": BenchmarkPeer("the image re-encoded once per class", _per_class_case)},
)
