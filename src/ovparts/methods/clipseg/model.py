"""CLIPSeg (Lüddecke & Ecker, CVPR 2022) as the OV-PARTS part-segmentation baseline.

Reads like the paper's figure: CLIP image encoder (run once per image) -> activations of three layers ->
light FiLM-conditioned decoder, run for all vocabulary entries in one batch -> one logit map per entry.
transformers' port re-encodes the image once per prompt; here the class-independent work (CLIP and the three
768->64 reductions) happens once per image and only the 64-wide decoder runs per class, in bounded chunks.
Parameter names match ``CLIPSegForImageSegmentation`` so its checkpoints load by a prefix rename.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError
from ...hub import checkpoint_specs, load_state_dict
from ...models.base import PartLogits, Preprocess, SegmenterDefaults
from ...models.chunking import CHUNK_LOOP_REASON, resolve_class_chunk
from ...models.clip_text import ClipTextModel, clip_backbone
from ...models.losses import nearest_labels, one_hot_targets, weighted_bce
from ...text.templates import TEMPLATE_SETS
from ...vocabulary import Vocabulary
from .config import CONFIGS, HF_DECODER_KEYS, ClipSegConfig, check_decoder_layers
from .losses import clipseg_baseline_loss

TEXT_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "hidden_act",
    "layer_norm_eps",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
VISION_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_channels",
    "image_size",
    "patch_size",
    "hidden_act",
    "layer_norm_eps",
)


class Attention(nn.Module):
    """Multi-head self-attention with CLIP's projection names; fused SDPA unless weights are asked for."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if heads < 1 or width % heads:
            raise ValueError(f"{heads} attention heads do not divide the width {width}")
        self.heads = heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        weights = None
        if return_weights:
            weights = torch.softmax(q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5), dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width)), weights


class DecoderMLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x), inplace=True))


class DecoderLayer(nn.Module):
    """Post-norm transformer block (CLIPSeg's decoder differs from CLIP's pre-norm encoder here)."""

    def __init__(self, width: int, heads: int, hidden: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = Attention(width, heads)
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.mlp = DecoderMLP(width, hidden)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.self_attn(x, return_weights)
        x = self.layer_norm1(x + attended)
        x = self.layer_norm2(x + self.mlp(x))
        return x, weights


def transposed_convolution_head(reduce_dim: int, patch_size: int, complex_head: bool) -> nn.Module:
    """Token grid -> full-resolution logits; "refined" checkpoints use the conv + two transposed convs."""
    if not complex_head:
        return nn.ConvTranspose2d(reduce_dim, 1, patch_size, stride=patch_size)
    kernel = patch_size // 4
    return nn.Sequential(
        nn.Conv2d(reduce_dim, reduce_dim, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(reduce_dim, reduce_dim // 2, kernel_size=kernel, stride=kernel),
        nn.ReLU(),
        nn.ConvTranspose2d(reduce_dim // 2, 1, kernel_size=kernel, stride=kernel),
    )


class Adapter(nn.Module):
    """OV-PARTS visual adapter: a bottleneck MLP mixed in residually (0.8 / 0.2)."""

    def __init__(self, width: int, reduction: int = 4) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(width, width // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(width // reduction, width, bias=False),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.8 * x + 0.2 * self.fc(x)


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # (B, N, H, W)
    features: torch.Tensor | None = None  # (B, N, reduce_dim, h, w) before the transposed convolution
    attention: torch.Tensor | None = None  # (B, N, heads, L, L) of the last block


class ClipSegDecoder(nn.Module):
    """The CLIPSeg head: builds from its config alone and runs on tensors (activations, conditions)."""

    def __init__(self, config: ClipSegConfig) -> None:
        super().__init__()
        vision = config.vision_config
        self.conditional_layer = config.conditional_layer
        self.class_chunk = config.class_chunk
        self.intermediate_size = config.decoder_intermediate_size
        self.heads = config.decoder_num_attention_heads
        self.reduce_dim = config.reduce_dim
        self.film_mul = nn.Linear(config.projection_dim, config.reduce_dim)
        self.film_add = nn.Linear(config.projection_dim, config.reduce_dim)
        self.transposed_convolution = transposed_convolution_head(
            config.reduce_dim, vision["patch_size"], config.use_complex_transposed_convolution
        )
        depth = len(config.extract_layers)
        self.reduces = nn.ModuleList(
            [nn.Linear(vision["hidden_size"], config.reduce_dim) for _ in range(depth)]
        )
        self.layers = nn.ModuleList(
            [
                DecoderLayer(
                    config.reduce_dim, config.decoder_num_attention_heads, config.decoder_intermediate_size
                )
                for _ in range(depth)
            ]
        )

    def film(self, x: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(B, L, r) tokens x (B, n, D) conditions -> (B, n, L, r): one FiLM-modulated copy per class."""
        return self.film_mul(conditions).unsqueeze(2) * x.unsqueeze(1) + self.film_add(conditions).unsqueeze(
            2
        )

    def forward(
        self,
        activations: list[torch.Tensor],
        conditions: torch.Tensor,
        grid: tuple[int, int],
        return_features: bool = False,
        return_attention: bool = False,
    ) -> DecoderOutput:
        """``activations``: (B, 1+h*w, C) in extract-layer order; ``conditions``: (N, D) or (B, N, D)."""
        batch = activations[0].shape[0]
        if conditions.dim() == 2:
            conditions = conditions.unsqueeze(0).expand(batch, -1, -1)
        # The reductions and any block before FiLM see no class: run them once per image.
        reduced = [reduce(a) for a, reduce in zip(reversed(activations), self.reduces, strict=True)]
        shared = None
        for index in range(self.conditional_layer):
            shared = reduced[index] if shared is None else reduced[index] + shared
            shared = self.layers[index](shared)[0]
        conditioned = reduced[self.conditional_layer] + (shared if shared is not None else 0)
        return self._decode_in_chunks(
            reduced, conditioned, conditions, grid, return_features, return_attention
        )

    def per_class_bytes(self, batch: int, length: int, grid: tuple[int, int]) -> int:
        """Rough fp32 activation bytes of one class: MLP hidden + attention scores + the upsampling head."""
        tokens = length * (self.intermediate_size + 6 * self.reduce_dim + self.heads * length)
        upsampled = 16 * grid[0] * grid[1] * self.reduce_dim // 2 + 256 * grid[0] * grid[1]
        return 4 * batch * (tokens + upsampled)

    def chunk_size(
        self, classes: int, batch: int, length: int, grid: tuple[int, int], device: torch.device
    ) -> int:
        """The configured chunk, or for "auto" as many classes as a quarter of the free memory holds."""
        return resolve_class_chunk(
            self.class_chunk, classes, self.per_class_bytes(batch, length, grid), device
        )

    @torch.compiler.disable(recursive=False, reason=CHUNK_LOOP_REASON)
    def _decode_in_chunks(
        self,
        reduced: list[torch.Tensor],
        conditioned: torch.Tensor,
        conditions: torch.Tensor,
        grid: tuple[int, int],
        return_features: bool,
        return_attention: bool,
    ) -> DecoderOutput:
        """The class-chunk loop and the concatenation of its outputs.

        Under ``torch.compile`` this frame stays eager and each chunk's decoding is a compiled graph of its own,
        dynamic in the chunk's size: a new vocabulary size then needs no new graph, where a traced loop would
        bake the number of chunks (so the number of classes) into the graph.
        """
        batch, length = conditioned.shape[:2]
        classes = conditions.shape[1]
        chunk = self.chunk_size(classes, batch, length, grid, conditioned.device)
        outputs = []
        for start in range(0, classes, chunk):  # a loop, not a comprehension: no frame of its own to trace
            part = conditions[:, start : start + chunk]
            outputs.append(self._decode_classes(reduced, conditioned, part, grid, return_attention))
        logits = torch.cat([o[0] for o in outputs], dim=1)
        features = torch.cat([o[1] for o in outputs], dim=1) if return_features else None
        attention = torch.cat([o[2] for o in outputs], dim=1) if return_attention else None
        return DecoderOutput(logits, features, attention)

    def _decode_classes(
        self,
        reduced: list[torch.Tensor],
        conditioned: torch.Tensor,
        conditions: torch.Tensor,
        grid: tuple[int, int],
        return_attention: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x = self.film(conditioned, conditions)
        batch, n_classes, length, width = x.shape
        x = x.reshape(batch * n_classes, length, width)
        last = len(self.layers) - 1
        weights = None
        for index in range(self.conditional_layer, len(self.layers)):
            if index > self.conditional_layer:
                x = (x.view(batch, n_classes, length, width) + reduced[index].unsqueeze(1)).flatten(0, 1)
            x, weights = self.layers[index](x, return_weights=return_attention and index == last)
        features = x[:, 1:].transpose(1, 2).reshape(batch * n_classes, width, *grid)
        logits = self.transposed_convolution(features).reshape(batch, n_classes, *logits_size(grid, self))
        features = features.view(batch, n_classes, width, *grid)
        if weights is not None:
            weights = weights.view(batch, n_classes, *weights.shape[1:])
        return logits, features, weights


def logits_size(grid: tuple[int, int], decoder: ClipSegDecoder) -> tuple[int, int]:
    head = decoder.transposed_convolution
    scale = head.stride[0] if isinstance(head, nn.ConvTranspose2d) else head[2].stride[0] * head[4].stride[0]
    return grid[0] * scale, grid[1] * scale


class ClipSeg(ClipTextModel):
    """CLIPSeg: one logit map per vocabulary entry (+ background with the OV-PARTS non-object vector)."""

    name = "clipseg"
    config_class = ClipSegConfig
    independent_classes = True  # the decoder runs once per prompt (docs/clipseg.md)
    # Subclasses (PartCLIPSeg) swap in a decoder that extends this one, and name the parameters a plain
    # transformers CLIPSeg checkpoint does not have, so they can start from one.
    decoder_class: type[ClipSegDecoder] = ClipSegDecoder
    foreign_optional: tuple[str, ...] = ("visual_adapter.", "non_object_embedding")

    def __init__(self, config: ClipSegConfig, tokenizer_folder: str | Path | None = None) -> None:
        super().__init__(config)
        self.backbone = clip_backbone(config, tokenizer_folder, "CLIPSeg")
        self.decoder = self.decoder_class(config)
        vision_width = config.vision_config["hidden_size"]
        self.visual_adapter = Adapter(vision_width) if config.visual_adapter else None
        if config.non_object_embedding:
            self.non_object_embedding = nn.Parameter(
                torch.randn(1, config.projection_dim) * config.projection_dim**-0.5
            )
        else:
            self.register_parameter("non_object_embedding", None)

    # ------------------------------------------------------------------ inference contract
    @property
    def preprocess(self) -> Preprocess:
        size = self.config.image_size
        return Preprocess((size, size), tuple(self.config.pixel_mean), tuple(self.config.pixel_std))

    @property
    def segmenter_defaults(self) -> SegmenterDefaults:
        return SegmenterDefaults(background_threshold=self.config.background_threshold)

    def compile_targets(self) -> list[nn.Module]:
        """CLIP's image path (``backbone`` called on pixels), the visual adapter and the decoder."""
        adapter = [self.visual_adapter] if self.visual_adapter is not None else []
        return [self.backbone, *adapter, self.decoder]

    def text_conditions(self, texts: list[str]) -> torch.Tensor:
        """(N, D) conditional vectors, averaged over the configured prompt templates."""
        if self.config.templates == "none":
            return self.backbone.encode_text(texts)
        templates = TEMPLATE_SETS[self.config.templates]
        return self.backbone.encode_text(texts, templates=templates).mean(dim=1)

    def activations(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        layers = [index + 1 for index in self.config.extract_layers]
        states = self.backbone(pixel_values, layers)
        if self.visual_adapter is not None:
            states = [self.visual_adapter(s) for s in states]
        return states

    def forward(
        self,
        pixel_values: torch.Tensor,
        conditions: torch.Tensor,
        return_features: bool = False,
        return_attention: bool = False,
    ) -> DecoderOutput:
        """Logits (B, N, H, W) for N conditional vectors; the image is encoded once for all of them."""
        patch = self.backbone.patch_size
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        return self.decoder(
            self.activations(pixel_values), conditions, grid, return_features, return_attention
        )

    def predict(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> PartLogits:
        conditions = self.text_conditions(vocab.part_texts(self.config.text_style))
        if self.non_object_embedding is not None:
            conditions = torch.cat([conditions, self.non_object_embedding.to(conditions.dtype)])
        logits = self(pixel_values, conditions).logits
        parts = logits[:, : len(vocab)]
        background = logits[:, len(vocab) :] if self.non_object_embedding is not None else None
        return PartLogits(parts=parts, background=background)

    def encode_image(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The CLIP activations the decoder reads (the visual adapter applied)."""
        return self.activations(pixel_values)

    def encode_vocabulary(self, vocab: Vocabulary) -> torch.Tensor:
        """The conditional vectors of ``vocab``'s parts (cached by the backbone)."""
        return self.text_conditions(vocab.part_texts(self.config.text_style))

    # ------------------------------------------------------------------ training
    def training_loss(
        self,
        batch: dict[str, torch.Tensor],
        vocab: Vocabulary,
        ignore_index: int,
        background_weight: float = 0.05,
    ) -> dict[str, torch.Tensor]:
        """OV-PARTS CLIPSeg baseline (official: part-clipseg ``baselines/clipseg.py``): BCE over the T parts
        and the non-object channel (weight ``background_weight``).

        Without a non-object vector the loss is the plain BCE over the T part channels, unlabelled pixels
        being all-zero targets, which is how the original CLIPSeg is trained.
        """
        conditions = self.encode_vocabulary(vocab)
        background = self.non_object_embedding
        if background is not None:
            conditions = torch.cat([conditions, background.to(conditions.dtype)])
        logits = self(batch["pixel_values"], conditions).logits
        labels = nearest_labels(batch["part_labels"], logits.shape[-2:])
        if background is not None:
            loss = clipseg_baseline_loss(logits.float(), labels, ignore_index, background_weight)
        else:
            targets, _ = one_hot_targets(labels, logits.shape[1], ignore_index)
            loss = weighted_bce(logits.float().permute(0, 2, 3, 1), targets)
        return {"total": loss}

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def _from_foreign(cls, folder: Path, stored: dict[str, Any], overrides: dict[str, Any]) -> ClipSeg:
        """A transformers ``CLIPSegForImageSegmentation`` folder (e.g. CIDAS/clipseg-rd64-refined)."""
        if stored.get("model_type") != "clipseg":
            raise CheckpointError(
                f"The checkpoint in {str(folder)!r} is neither an ovparts nor a transformers CLIPSeg checkpoint."
            )
        config = cls.config_class.from_dict({**config_from_hf(stored, folder), **overrides})
        specs = checkpoint_specs(folder)
        model = cls.checked_build(config, folder, specs, cls.foreign_optional, hf_state_dict_to_ovparts)
        state = hf_state_dict_to_ovparts(load_state_dict(folder))
        model.load_checked_state_dict(state, source=str(folder), allow_missing=cls.foreign_optional)
        model._after_foreign_load()
        return model.eval()

    def _after_foreign_load(self) -> None:
        """Hook: initialise what a transformers CLIPSeg checkpoint did not provide."""


def config_from_hf(hf: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """Our config fields from a transformers CLIPSeg config.json."""
    for section in ("text_config", "vision_config"):
        if not isinstance(hf.get(section, {}), dict):
            where = f" in {str(folder)!r}" if folder is not None else ""
            raise CheckpointError(f"The config.json{where} has a {section} that is not a mapping.")
    text = {k: v for k, v in hf.get("text_config", {}).items() if k in TEXT_KEYS}
    vision = {k: v for k, v in hf.get("vision_config", {}).items() if k in VISION_KEYS}
    values = {k: hf[k] for k in HF_DECODER_KEYS if k in hf}
    return {"text_config": text, "vision_config": vision, **values}


def hf_state_dict_to_ovparts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``clip.*`` -> ``backbone.clip.*``; decoder names are shared; index buffers are rebuilt, not loaded."""
    mapped = {}
    for key, tensor in state.items():
        if key.endswith("position_ids"):
            continue
        mapped[f"backbone.{key}" if key.startswith("clip.") else key] = tensor
    return mapped


__all__ = [
    "CONFIGS",
    "ClipSeg",
    "ClipSegConfig",
    "ClipSegDecoder",
    "DecoderOutput",
    "check_decoder_layers",
    "config_from_hf",
    "hf_state_dict_to_ovparts",
    "transposed_convolution_head",
]
