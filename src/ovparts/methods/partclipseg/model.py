"""PartCLIPSeg (Choi et al., NeurIPS 2024): object-specific parts from generalized parts + object context.

Reads like the paper's figure:
1. CLIP encodes the image once; the CLIPSeg trunk (reductions, FiLM, three decoder blocks) runs for the
   N = P generalized parts ("head") + O part-bearing objects ("dog") + 1 learned background vector. The
   string "dog's head" itself is never encoded, which is what lets unseen combinations transfer.
2. Each object-specific part t = (object o, part p) is rebuilt from the trunk's 64-channel features of p
   and o (a per-pixel 128 -> 64 linear fusion), modulated by a second FiLM computed from the
   [object ; part] text embeddings (1024 -> 512), and decoded by a copy of the refined head.
3. Outputs: object-specific part logits (T + background), the trunk's logits for generalized parts and for
   objects + background, and the last decoder block's attention for the attention-control losses.

Parameter names follow the official ``PartCLIPSegForImageSegmentation`` (minus its ``partclipseg_model.``
prefix and with ``clip.`` under ``backbone.``), so converted checkpoints load with strict checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...models.base import PartLogits
from ...models.chunking import map_slices, resolve_class_chunk
from ...vocabulary import Vocabulary
from ..clipseg.model import ClipSeg, ClipSegDecoder, DecoderOutput, transposed_convolution_head
from .config import CONFIGS, PartClipSegConfig
from .losses import attention_control_losses, partclipseg_segmentation_losses, partclipseg_total_loss

# Logit given to objects without parts in `PartLogits.objects`: sigmoid(-1e4) == 0, and unlike -inf it
# survives bilinear interpolation without NaNs.
ABSENT_LOGIT = -1e4


@dataclass(frozen=True)
class ClassLayout:
    """How a vocabulary becomes PartCLIPSeg's text inputs and index maps.

    The N conditional vectors are ``texts`` (P generalized parts then O part objects) + the background
    vector. For object-specific part t: ``part_index[t]`` = p(t) and ``object_index[t]`` = P + o(t) index
    the trunk's N outputs; ``text_object_index[t]`` picks the object half of the second FiLM's text input,
    which the official code takes at o(t) (a generalized part's embedding) instead of P + o(t).
    """

    texts: tuple[str, ...]
    num_generalized: int
    num_objects: int
    part_index: torch.Tensor
    object_index: torch.Tensor
    text_object_index: torch.Tensor
    part_to_object: torch.Tensor  # (T,) o(t), an index into the O part objects
    object_to_part_object: torch.Tensor  # (len(vocab.objects),) o or -1 for objects without parts

    @property
    def num_classes(self) -> int:
        return self.num_generalized + self.num_objects + 1


@lru_cache(maxsize=32)
def class_layout(vocab: Vocabulary, faithful: bool) -> ClassLayout:
    """Generalized parts and part objects in Python-sorted order when ``faithful``, else first appearance."""
    vocab = vocab.with_official_order(faithful)
    generalized, objects = vocab.generalized_parts, vocab.part_objects
    parts = torch.as_tensor(vocab.part_to_generalized)
    objs = torch.as_tensor(vocab.part_to_part_object)
    return ClassLayout(
        texts=tuple(generalized) + tuple(objects),
        num_generalized=len(generalized),
        num_objects=len(objects),
        part_index=parts,
        object_index=objs + len(generalized),
        text_object_index=objs if faithful else objs + len(generalized),
        part_to_object=objs,
        object_to_part_object=torch.as_tensor(vocab.object_to_part_object),
    )


@dataclass
class PartClipSegOutput:
    part_logits: torch.Tensor  # (B, T+1, H, W): object-specific parts, then background
    class_logits: torch.Tensor  # (B, P+O+1, H, W): generalized parts, objects, background
    attention: torch.Tensor | None = None  # (B, N, heads, L, L) of the last decoder block


@dataclass
class PartDecoderOutput(DecoderOutput):
    part_logits: torch.Tensor | None = None  # (B, T+1, H, W) when the decoder was given the layout's indices


class PartClipSegDecoder(ClipSegDecoder):
    """The CLIPSeg decoder (the shared trunk) plus PartCLIPSeg's object-specific reconstruction."""

    def __init__(self, config: PartClipSegConfig) -> None:
        super().__init__(config)
        reduce, embed = config.reduce_dim, config.projection_dim
        self.cond_film_mul = nn.Linear(embed, reduce)
        self.cond_film_add = nn.Linear(embed, reduce)
        self.part_obj_with_cond_embed = transposed_convolution_head(
            reduce, config.vision_config["patch_size"], config.use_complex_transposed_convolution
        )
        self.part_obj_mlp = nn.Sequential(nn.Linear(2 * reduce, reduce))
        self.reduce_cond_embed = nn.Linear(2 * embed, embed)
        # The official fusion layers start from PyTorch's default init with zero biases (transformers'
        # init for keys the CLIPSeg checkpoint lacks).
        nn.init.zeros_(self.part_obj_mlp[0].bias)
        nn.init.zeros_(self.reduce_cond_embed.bias)
        self.copy_trunk_into_branch()

    @torch.no_grad()
    def copy_trunk_into_branch(self) -> None:
        """Start the second FiLM and head as copies of CLIPSeg's, as the official code does after loading."""
        self.cond_film_mul.load_state_dict(self.film_mul.state_dict())
        self.cond_film_add.load_state_dict(self.film_add.state_dict())
        self.part_obj_with_cond_embed.load_state_dict(self.transposed_convolution.state_dict())

    def forward(  # type: ignore[override]
        self,
        activations: list[torch.Tensor],
        conditions: torch.Tensor,
        grid: tuple[int, int],
        return_features: bool = False,
        return_attention: bool = False,
        indices: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> PartDecoderOutput:
        """The trunk (CLIPSeg's decoder) and, given ``indices`` = (part, object, text-object index), the
        object-specific logits (:meth:`compose`) in the same call, so a compiled decoder covers both."""
        trunk = super().forward(
            activations, conditions, grid, return_features or indices is not None, return_attention
        )
        part_logits = None if indices is None else self.compose(trunk.features, conditions, *indices)
        features = trunk.features if return_features else None
        return PartDecoderOutput(trunk.logits, features, trunk.attention, part_logits)

    def compose(
        self,
        features: torch.Tensor,
        conditions: torch.Tensor,
        part_index: torch.Tensor,
        object_index: torch.Tensor,
        text_object_index: torch.Tensor,
    ) -> torch.Tensor:
        """Object-specific logits (B, T+1, H, W) from trunk features (B, N, r, h, w) and conditions (N, D).

        The last entry is the background: its visual and text inputs are the background class twice.
        """
        last = torch.tensor([conditions.shape[0] - 1], device=part_index.device)
        part_index = torch.cat([part_index, last]).to(features.device)
        object_index = torch.cat([object_index, last]).to(features.device)
        text_object_index = torch.cat([text_object_index, last]).to(features.device)
        # Text side once per vocabulary (no image involved): r_t = Linear([E_obj ; E_part]).
        text = self.reduce_cond_embed(
            torch.cat([conditions[text_object_index], conditions[part_index]], dim=-1)
        )
        scale, shift = self.cond_film_mul(text), self.cond_film_add(text)
        batch, _, width, *grid = features.shape
        per_class = 4 * batch * grid[0] * grid[1] * (4 * width + 16 * 16)  # fused maps + upsampled logits
        chunk = resolve_class_chunk(self.class_chunk, part_index.numel(), per_class, features.device)

        def run(
            parts: torch.Tensor, objects: torch.Tensor, mul: torch.Tensor, add: torch.Tensor
        ) -> torch.Tensor:
            visual = torch.cat([features[:, parts], features[:, objects]], dim=2)
            fused = self.part_obj_mlp(visual.movedim(2, -1))  # (B, t, h, w, r)
            modulated = mul[:, None, None, :] * fused + add[:, None, None, :]
            batch, count = modulated.shape[:2]
            out = self.part_obj_with_cond_embed(modulated.movedim(-1, 2).flatten(0, 1))
            return out.view(batch, count, *out.shape[-2:])

        return map_slices(run, [part_index, object_index, scale, shift], chunk, dim=0, out_dim=1)


class PartClipSeg(ClipSeg):
    """PartCLIPSeg: CLIPSeg conditioned on generalized parts and objects, recombined per object-specific part."""

    name = "partclipseg"
    config_class = PartClipSegConfig
    decoder_class = PartClipSegDecoder
    foreign_optional = (
        "visual_adapter.",
        "non_object_embedding",
        "decoder.cond_film_",
        "decoder.part_obj_",
        "decoder.reduce_cond_embed.",
    )

    def __init__(self, config: PartClipSegConfig, tokenizer_folder: str | Path | None = None) -> None:
        if not (config.visual_adapter and config.non_object_embedding):
            raise ValueError("PartCLIPSeg needs visual_adapter=True and non_object_embedding=True.")
        super().__init__(config, tokenizer_folder)

    @property
    def independent_classes(self) -> bool:  # type: ignore[override]
        """Per class, unless ``faithful`` takes the object text at a vocabulary-wide index (docs/partclipseg.md)."""
        return not self.config.faithful

    def _after_foreign_load(self) -> None:
        """Built from a plain CLIPSeg checkpoint: copy its FiLM and head into the object-specific branch."""
        self.decoder.copy_trunk_into_branch()

    # ------------------------------------------------------------------ the figure
    def layout(self, vocab: Vocabulary) -> ClassLayout:
        return class_layout(vocab, self.config.faithful)

    def conditions(self, layout: ClassLayout) -> torch.Tensor:
        """(N, D): raw names, no template (as the official code), then the learned background vector."""
        texts = self.backbone.encode_text(list(layout.texts))
        return torch.cat([texts.to(self.non_object_embedding.dtype), self.non_object_embedding])

    def forward(  # type: ignore[override]
        self,
        pixel_values: torch.Tensor,
        conditions: torch.Tensor,
        layout: ClassLayout,
        return_attention: bool = False,
    ) -> PartClipSegOutput:
        patch = self.backbone.patch_size
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        indices = (layout.part_index, layout.object_index, layout.text_object_index)
        out = self.decoder(
            self.activations(pixel_values),
            conditions,
            grid,
            return_attention=return_attention,
            indices=indices,
        )
        return PartClipSegOutput(out.part_logits, out.logits, out.attention)

    def predict(self, pixel_values: torch.Tensor, vocab: Vocabulary) -> PartLogits:
        """Object-specific parts + background, and the object head mapped onto ``vocab.objects``.

        Objects without parts are never predicted (their logits are ``ABSENT_LOGIT``).
        """
        layout = self.layout(vocab)
        out = self(pixel_values, self.conditions(layout), layout)
        tokens = len(vocab)
        p, o = layout.num_generalized, layout.num_objects
        object_logits = out.class_logits[:, p : p + o]
        mapping = layout.object_to_part_object.to(object_logits.device)
        objects = object_logits[:, mapping.clamp(min=0)]
        objects = objects.masked_fill((mapping < 0)[None, :, None, None], ABSENT_LOGIT)
        return PartLogits(
            parts=out.part_logits[:, :tokens],
            background=out.part_logits[:, tokens:],
            objects=objects,
            object_background=out.class_logits[:, p + o :],
            extras={"generalized_parts": out.class_logits[:, :p], "layout": layout},
        )

    def encode_vocabulary(self, vocab: Vocabulary) -> torch.Tensor:
        """The conditional vectors of ``vocab``'s generalized parts and objects + background (cached text)."""
        return self.conditions(self.layout(vocab))

    # ------------------------------------------------------------------ training
    def training_loss(
        self, batch: dict[str, torch.Tensor], vocab: Vocabulary, ignore_index: int
    ) -> dict[str, torch.Tensor]:
        """PartCLIPSeg (official: part-clipseg ``baselines/partclipseg.py``): every term of :meth:`loss`
        and their weighted total."""
        return self.loss(
            batch["pixel_values"], vocab, batch["part_labels"], batch["object_labels"], ignore_index
        )

    def training_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``faithful``: the official training feeds BGR pixels normalised with RGB statistics."""
        if not self.config.faithful:
            return pixel_values
        mean = torch.tensor(self.config.pixel_mean, device=pixel_values.device).view(1, 3, 1, 1)
        std = torch.tensor(self.config.pixel_std, device=pixel_values.device).view(1, 3, 1, 1)
        raw = pixel_values * std + mean
        return (raw.flip(1) - mean) / std

    def loss(
        self,
        pixel_values: torch.Tensor,
        vocab: Vocabulary,
        part_labels: torch.Tensor,
        object_labels: torch.Tensor,
        ignore_index: int = 255,
    ) -> dict[str, torch.Tensor]:
        """Training losses for a batch.

        ``pixel_values`` (B, 3, H, W) prepared as for inference (RGB); ``part_labels`` (B, h, w) ids into
        ``vocab.parts`` and ``object_labels`` (B, h, w) ids into ``vocab.objects``, ``ignore_index`` or -1
        where unlabelled / background. Labels are resized by nearest to the network output, as officially.
        Returns the terms and their weighted ``total``.
        """
        config = self.config
        layout = self.layout(vocab)
        use_attention = config.use_attention_losses
        out = self(self.training_pixels(pixel_values), self.conditions(layout), layout, use_attention)
        size = out.part_logits.shape[-2:]
        parts = _nearest(part_labels, size)
        objects = _nearest(object_labels, size)
        valid = (objects >= 0) & (objects != ignore_index) & (objects < layout.object_to_part_object.numel())
        mapping = layout.object_to_part_object.to(objects.device)
        part_objects = torch.where(valid, mapping[torch.where(valid, objects, 0)], -1)
        part_objects = torch.where(part_objects >= 0, part_objects, ignore_index)
        terms = partclipseg_segmentation_losses(
            out.part_logits,
            out.class_logits,
            parts,
            part_objects,
            layout.part_index,
            layout.num_generalized,
            ignore_index=ignore_index,
            background_weight=config.background_weight,
            faithful=config.faithful,
        )
        if use_attention:
            patch = self.backbone.patch_size
            grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
            terms["separation"], terms["enhancement"] = attention_control_losses(
                out.attention.mean(dim=2),
                layout.part_index,
                layout.object_index,
                layout.part_to_object,
                parts,
                part_objects,
                grid,
                gamma=config.attention_threshold,
                sigma=config.smoothing_sigma,
                ignore_index=ignore_index,
                faithful=config.faithful,
                temperature=config.separation_temperature,
            )
        terms["total"] = partclipseg_total_loss(
            terms,
            object_weight=config.object_weight,
            part_weight=config.part_weight,
            separation_weight=config.separation_weight,
            enhancement_weight=config.enhancement_weight,
            faithful=config.faithful,
        )
        return terms

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The official "VA+L+F+D" set: visual adapter, CLIP text embeddings, FiLM and the whole decoder.

        The background vector is *not* trained officially (it keeps its random initial value).
        """
        keep = ("visual_adapter", "clip.text_model.embeddings", "film", "decoder")
        return [p for name, p in self.named_parameters() if any(k in name for k in keep)]


def _nearest(labels: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """(B, h, w) integer labels resized by nearest neighbour, as the official training does."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels.long()
    return F.interpolate(labels[:, None].double(), size=tuple(size), mode="nearest")[:, 0].long()


def config_for(name: str, **overrides: Any) -> PartClipSegConfig:
    """A named config with overrides, for scripts and tests."""
    return PartClipSegConfig.from_dict({**CONFIGS[name], **overrides})


__all__ = [
    "ABSENT_LOGIT",
    "CONFIGS",
    "ClassLayout",
    "PartClipSeg",
    "PartClipSegConfig",
    "PartClipSegDecoder",
    "class_layout",
    "config_for",
]
