"""CAT-Seg: cost aggregation for open-vocabulary segmentation (Cho et al., CVPR 2024).

Reads top to bottom as the paper's figure: a cosine cost volume between dense CLIP image features and the
class text embeddings -> a 7x7 cost embedding -> N x (spatial aggregation per class, class aggregation per
pixel) -> a guided upsampling decoder -> one logit map per class at 4x the feature grid.

:class:`CatSegAggregator` is the *head*: it takes tensors only (image features, text embeddings,
guidance maps) and can be built from :class:`CatSegHeadConfig` alone, without any backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...backbones.clip_dense import apply_finetune
from ...backbones.resnet import ResNet, renormalize
from ...errors import ConfigError
from ...models.base import PartLogits, Preprocess, SegmenterDefaults
from ...models.chunking import resolve_class_chunk
from ...models.clip_text import ClipTextModel, clip_backbone
from ...models.cost_aggregation import (
    ClassAggregation,
    CostEmbedding,
    GuidedUp,
    SpatialAggregation,
    cosine_cost,
    map_classes,
)
from ...models.stages import stage
from ...preprocessing import encoder_input
from ...vocabulary import Vocabulary
from .config import CATSEG_TEMPLATE, CONFIGS, CatSegConfig, CatSegHeadConfig
from .losses import catseg_bce_loss

# Logit given to classes that the top-k class selection dropped (official value).
DROPPED_CLASS_LOGIT = -100.0


class CatSegLayer(nn.Module):
    """Spatial aggregation (per class) followed by class aggregation (per pixel)."""

    def __init__(self, cfg: CatSegHeadConfig) -> None:
        super().__init__()
        self.spatial = SpatialAggregation(cfg.hidden_dim, cfg.appearance_guidance_dim, cfg.heads, cfg.window)
        self.classes = ClassAggregation(
            cfg.hidden_dim, cfg.text_guidance_dim, cfg.heads, cfg.pad_len, attention=cfg.attention
        )

    def forward(
        self,
        x: Tensor,
        appearance: Tensor | None,
        text: Tensor | None,
        pool: tuple[int, int],
        class_chunk: int | None,
    ) -> Tensor:
        with stage("spatial aggregation"):
            x = self.spatial(x, appearance, class_chunk)
        with stage("class aggregation"):
            return self.classes(x, text, pool, class_chunk)


class CatSegAggregator(nn.Module):
    """The CAT-Seg head: image features x text embeddings -> per-class logits at 4x the feature grid.

    ``forward(image, text, guidance)``:

    - ``image`` (B, C, H, W): dense CLIP features (projection space, e.g. 512 x 24 x 24);
    - ``text`` (B, T, P, C) or (T, P, C): class embeddings, P prompt templates, L2-normalised or not;
    - ``guidance``: (appearance (B, A, H, W), decoder guidance at 2x (B, D1, 2H, 2W) and 4x (B, D2, 4H, 4W));
    - returns logits (B, T, 4H, 4W).

    The text is used as the official ``Aggregator.forward`` uses it (both releases): the cost volume is the
    cosine of each pixel with each template's embedding (normalised there), and the text guidance is the
    normalised mean over templates of the text *as given*. Only when the vocabulary exceeds ``pad_len``
    (CVPR top-k) do the kept classes continue with per-template normalised text, guidance included. For
    normalised input (what :meth:`CatSeg.text_embeddings` gives) the two orders agree; for un-normalised
    multi-template input they do not, and this one is the official one.
    """

    def __init__(self, config: CatSegHeadConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or CatSegHeadConfig()
        self.cost_embed = CostEmbedding(cfg.prompts, cfg.hidden_dim)
        self.guidance_proj = (
            nn.Conv2d(cfg.appearance_dim, cfg.appearance_guidance_dim, 3, padding=1)
            if cfg.appearance_dim
            else None
        )
        self.text_guidance_proj = (
            nn.Linear(cfg.text_dim, cfg.text_guidance_dim) if cfg.text_guidance_dim else None
        )
        self.decoder_guidance_proj = nn.ModuleList(
            nn.Conv2d(d, p, 3, padding=1)
            for d, p in zip(cfg.decoder_guidance_dims, cfg.decoder_guidance_proj_dims, strict=True)
        )
        self.layers = nn.ModuleList(CatSegLayer(cfg) for _ in range(cfg.num_layers))
        g1, g2 = cfg.decoder_guidance_proj_dims
        self.decoder1 = GuidedUp(cfg.hidden_dim, cfg.decoder_dims[0], g1)
        self.decoder2 = GuidedUp(cfg.decoder_dims[0], cfg.decoder_dims[1], g2)
        self.head = nn.Conv2d(cfg.decoder_dims[1], 1, 3, padding=1)

    # -- pieces, each usable alone -------------------------------------------------------------------------

    def select_classes(self, image: Tensor, text: Tensor) -> Tensor | None:
        """Indices (B, pad_len) of the classes kept when the vocabulary exceeds ``pad_len``, else None.

        Classes are ranked by their best raw cosine cost anywhere in the image (over templates and pixels),
        as in the CVPR code, and kept in ascending index order so the result does not depend on how
        ``topk`` orders ties.
        """
        t = text.shape[1]
        if self.config.pad_len <= 0 or t <= self.config.pad_len:
            return None
        score = cosine_cost(image, text).amax(dim=(1, 3, 4))  # (B, T)
        return score.topk(self.config.pad_len, dim=1).indices.sort(dim=1).values

    def project_guidance(
        self, guidance: Sequence[Tensor | None], grid: tuple[int, int] | None = None
    ) -> tuple[Tensor | None, list[Tensor | None]]:
        """Appearance guidance for the Swin blocks and the two decoder guidance maps, projected + ReLU."""
        appearance = guidance[0] if len(guidance) > 0 else None
        if appearance is not None and grid is not None:
            expected = [grid, (2 * grid[0], 2 * grid[1]), (4 * grid[0], 4 * grid[1])]
            for g, size in zip(guidance, expected, strict=False):
                if g is not None and tuple(g.shape[-2:]) != size:
                    raise ConfigError(
                        f"Guidance maps must be at 1x, 2x and 4x the {grid[0]}x{grid[1]} feature grid; "
                        f"got {tuple(g.shape[-2:])} where {size} was expected."
                    )
        a = (
            F.relu(self.guidance_proj(appearance))
            if self.guidance_proj is not None and appearance is not None
            else None
        )
        dec: list[Tensor | None] = []
        for i, proj in enumerate(self.decoder_guidance_proj):
            g = guidance[i + 1] if len(guidance) > i + 1 else None
            dec.append(F.relu(proj(g)) if g is not None else None)
        return a, dec

    def text_guidance(self, text: Tensor) -> Tensor | None:
        """Mean over templates of ``text`` (B, T, P, C), L2-normalised, projected + ReLU: (B, T, text_guidance_dim).

        ``text`` is averaged as given, without normalising each template first (official order): callers
        decide whether the templates are normalised (see :meth:`forward`).
        """
        if self.text_guidance_proj is None:
            return None
        return F.relu(self.text_guidance_proj(F.normalize(text.mean(dim=2), dim=-1)))

    def decode(self, x: Tensor, guidance: Sequence[Tensor | None], class_chunk: int | None = None) -> Tensor:
        """Aggregated cost (B, C, T, H, W) -> logits (B, T, 4H, 4W), a chunk of classes at a time.

        The upsampling convolutions run channels-last: oneDNN's direct convolutions are faster on that
        layout (measured about 30% on the ViT-B decoder at K = 116 on a CPU), and the result is the same.
        """
        first, second = guidance[0], guidance[1]
        channels_last = torch.channels_last

        # One guidance map per image, shared by its classes (GuidedUp broadcasts its projection).
        first, second = (
            None if g is None else g.contiguous(memory_format=channels_last) for g in (first, second)
        )

        def run(chunk: Tensor) -> Tensor:
            b, c, tc, h, w = chunk.shape
            y = chunk.transpose(1, 2).reshape(b * tc, c, h, w).contiguous(memory_format=channels_last)
            y = self.decoder1(y, first)
            y = self.decoder2(y, second)
            return self.head(y).reshape(b, tc, *y.shape[-2:])

        return map_classes(run, x, class_chunk, out_dim=1)

    def per_class_bytes(self, image: Tensor) -> int:
        """Rough fp32 activation bytes of one class for dense features ``image`` (B, C, H, W): the hidden maps
        on the feature grid (a few live at once in the Swin blocks), the cost volume's P channels, and the
        guided upsampling to 2x and 4x. ``class_chunk="auto"`` divides its memory budget by this."""
        cfg = self.config
        cells = image.shape[0] * image.shape[-2] * image.shape[-1]
        first, second = cfg.decoder_dims
        return 4 * cells * (8 * cfg.hidden_dim + cfg.prompts + 4 * 3 * first + 16 * 3 * second)

    # -- forward -----------------------------------------------------------------------------------------

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        guidance: Sequence[Tensor | None] = (),
        class_chunk: int | None = None,
    ) -> Tensor:
        cfg = self.config
        chunk = cfg.class_chunk if class_chunk is None else class_chunk
        if text.dim() == 3:
            text = text.unsqueeze(0).expand(image.shape[0], -1, -1, -1)
        if text.dim() != 4 or text.shape[-1] != image.shape[1]:
            raise ConfigError(
                f"Text embeddings must be (B, T, P, {image.shape[1]}) to match the image features, "
                f"got {tuple(text.shape)}."
            )
        if text.shape[2] != cfg.prompts:
            raise ConfigError(
                f"This head expects {cfg.prompts} prompt template(s) per class, got {text.shape[2]}."
            )
        num_classes = text.shape[1]
        with stage("cost volume"):
            keep = self.select_classes(image, text)
            if keep is not None:
                # Official top-k branch: the kept classes go on with per-template normalised text, so their
                # guidance averages normalised templates. Otherwise the guidance averages the text as given.
                normed = F.normalize(text, dim=-1)
                text = torch.gather(normed, 1, keep[:, :, None, None].expand(-1, -1, *text.shape[2:]))
            x = self.cost_embed(cosine_cost(image, text), chunk)
        with stage("guidance projection"):
            appearance, dec_guidance = self.project_guidance(guidance, tuple(image.shape[-2:]))
            text_guidance = self.text_guidance(text)
        pool = cfg.pooling_train if self.training else cfg.pooling_eval
        for layer in self.layers:
            x = layer(x, appearance, text_guidance, pool, chunk)
        with stage("decoder"):
            logits = self.decode(x, dec_guidance, chunk)

        if keep is not None:
            full = logits.new_full((logits.shape[0], num_classes, *logits.shape[2:]), DROPPED_CLASS_LOGIT)
            logits = full.scatter(1, keep[:, :, None, None].expand(-1, -1, *logits.shape[2:]), logits)
        return logits


# ---------------------------------------------------------------------------------------------------------
# The full model: CLIP (dense path + guidance) -> aggregator head.


class ClipGuidance(nn.Module):
    """CVPR guidance: transposed convolutions lifting two intermediate CLIP maps to 2x and 4x the grid."""

    def __init__(self, width: int, dims: Sequence[int]) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(width, dims[0], kernel_size=2, stride=2)
        self.up2 = nn.ConvTranspose2d(width, dims[1], kernel_size=4, stride=4)

    def forward(self, hidden: Sequence[Tensor]) -> list[Tensor]:
        return [self.up1(hidden[0]), self.up2(hidden[1])]


def detectron2_test_chain(cfg: Any) -> Preprocess:
    """The official test-time chain of the detectron2-based methods (CAT-Seg, PartCATSeg), from the config's
    fields: short-edge resize, size divisibility, the network input size, and the sigmoid before the resize."""
    return Preprocess(
        (cfg.image_size, cfg.image_size),
        tuple(cfg.pixel_mean),
        tuple(cfg.pixel_std),
        shortest_edge=cfg.test_short_edge,
        max_size=cfg.test_max_size,
        size_divisibility=cfg.size_divisibility,
        activation_before_resize=True,
    )


class CatSeg(ClipTextModel):
    """CAT-Seg: one logit map per vocabulary entry at 4x the CLIP grid (96x96 at 384 px); no background.

    Without a background channel the Segmenter calls a pixel background where no part's probability
    reaches ``config.background_threshold``.
    """

    name = "catseg"
    config_class = CatSegConfig
    independent_classes = False  # class attention mixes the vocabulary's classes (docs/catseg.md)

    def __init__(self, config: CatSegConfig, tokenizer_folder: str | Path | None = None) -> None:
        super().__init__(config)
        self.backbone = clip_backbone(config, tokenizer_folder, "CAT-Seg")
        width = config.vision_config["hidden_size"]
        if config.guidance == "clip":
            if len(config.guidance_layers) != 2:
                raise ConfigError("CLIP guidance needs exactly two guidance layers (ViT-B: 3 and 7).")
            self.clip_guidance = ClipGuidance(width, config.clip_guidance_dims)
            self.resnet = None
        else:
            self.clip_guidance = None
            self.resnet = ResNet(config.resnet_config)
        self.head = CatSegAggregator(config.head_config)
        self.set_finetune(config.finetune)

    # ------------------------------------------------------------------ training scope
    def set_finetune(self, mode: str) -> list[str]:
        """Freeze CLIP except the parameters ``mode`` trains (see :func:`finetune_parameter_names`)."""
        return apply_finetune(self.backbone.clip, mode)

    def parameter_groups(
        self, lr: float, clip_multiplier: float = 0.01, weight_decay: float = 1e-4
    ) -> list[dict]:
        """AdamW groups as the official recipe: CLIP at ``lr * clip_multiplier``, norms without decay."""
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        norm_types = (nn.LayerNorm, nn.GroupNorm)
        norm_params = {id(p) for m in self.modules() if isinstance(m, norm_types) for p in m.parameters()}
        for name, p in self.named_parameters():
            if p.requires_grad:
                key = (name.startswith("backbone."), id(p) in norm_params)
                groups.setdefault(key, []).append(p)
        return [
            {
                "params": params,
                "lr": lr * (clip_multiplier if is_clip else 1.0),
                "weight_decay": 0.0 if is_norm else weight_decay,
            }
            for (is_clip, is_norm), params in groups.items()
        ]

    # ------------------------------------------------------------------ encoders
    @property
    def preprocess(self) -> Preprocess:
        return detectron2_test_chain(self.config)

    @property
    def segmenter_defaults(self) -> SegmenterDefaults:
        """The official evaluation: the sliding window over the canvas, as the config sets it."""
        cfg = self.config
        return SegmenterDefaults(
            background_threshold=cfg.background_threshold,
            sliding_window=cfg.sliding_window,
            sliding_canvas=cfg.sliding_canvas,
            sliding_overlap=cfg.sliding_overlap,
            sliding_window_size=cfg.sliding_window_size,
        )

    def compile_targets(self) -> list[nn.Module]:
        """CLIP's dense image path, the guidance branch (CLIP upsamplings or ResNet) and the aggregator."""
        guidance = self.clip_guidance if self.clip_guidance is not None else self.resnet
        return [self.backbone, guidance, self.head]

    def text_embeddings(self, texts: Sequence[str]) -> Tensor:
        """(T, P, D) L2-normalised embeddings, one per class and prompt template."""
        return self.backbone.encode_text(
            list(texts),
            templates=self.config.template_list,
            normalize=True,
            precision=self.config.text_precision,
        )

    def image_features(self, pixel_values: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Dense CLIP features (B, D, h, w) and the guidance maps (appearance, decoder 2x, decoder 4x).

        ``pixel_values`` of any size: each encoder's copy (CLIP-normalised; ImageNet-normalised for the old
        ResNet) is zero-padded to ``size_divisibility`` and interpolated to ``image_size``, as the official
        forward does; at ``image_size`` both steps do nothing.
        """
        cfg = self.config
        side = (cfg.image_size, cfg.image_size)
        layers = tuple(cfg.guidance_layers) if cfg.guidance == "clip" else ()
        clip_input = encoder_input(pixel_values, side, cfg.size_divisibility)
        dense, *hidden = self.backbone(clip_input, layers, dense_residual=cfg.dense_residual)
        if self.clip_guidance is not None:
            return dense, [dense, *self.clip_guidance(hidden)]
        image = renormalize(pixel_values, cfg.pixel_mean, cfg.pixel_std, cfg.resnet_mean, cfg.resnet_std)
        res2, res3, res4 = self.resnet(encoder_input(image, side, cfg.size_divisibility))[-3:]
        return dense, [res4, res3, res2]

    # ------------------------------------------------------------------ forward
    def forward(self, pixel_values: Tensor, text: Tensor, class_chunk: int | None = None) -> Tensor:
        """Logits (B, T, 4h, 4w) for text embeddings (T, P, D) or (B, T, P, D)."""
        with stage("image encoder"):
            dense, guidance = self.image_features(pixel_values)
        chunk = self.config.class_chunk if class_chunk is None else class_chunk
        if chunk == "auto":
            classes = text.shape[-3]
            chunk = resolve_class_chunk(chunk, classes, self.per_class_bytes(dense), dense.device)
        return self.head(dense, text, guidance, class_chunk=chunk)

    def per_class_bytes(self, dense: Tensor) -> int:
        """Rough fp32 activation bytes of one class in the head (:meth:`CatSegAggregator.per_class_bytes`)."""
        return self.head.per_class_bytes(dense)

    def predict(self, pixel_values: Tensor, vocab: Vocabulary) -> PartLogits:
        text = self.text_embeddings(vocab.part_texts(self.config.text_style))
        return PartLogits(parts=self(pixel_values, text), background=None)

    def loss(
        self,
        pixel_values: Tensor,
        labels: Tensor,
        texts: Sequence[str],
        ignore_index: int = 255,
        faithful: bool = True,
    ) -> Tensor:
        """The official training loss for a batch: BCE on one-hot labels at the label resolution."""
        logits = self(pixel_values, self.text_embeddings(texts))
        return catseg_bce_loss(logits, labels, ignore_index=ignore_index, faithful=faithful)

    # ------------------------------------------------------------------ contract
    def encode_image(self, pixel_values: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Dense CLIP features and guidance maps (:meth:`image_features`)."""
        return self.image_features(pixel_values)

    def encode_vocabulary(self, vocab: Vocabulary) -> Tensor:
        """(T, P, D) text embeddings of ``vocab``'s parts (cached by the backbone)."""
        return self.text_embeddings(vocab.part_texts(self.config.text_style))

    def training_loss(
        self, batch: dict[str, Tensor], vocab: Vocabulary, ignore_index: int, faithful: bool = False
    ) -> dict[str, Tensor]:
        """CAT-Seg (official: CAT-Seg ``cat_seg_model.py:CATSeg.forward``): BCE on one-hot labels over the parts.

        ``faithful=True`` keeps ignore pixels inside the mean with all-zero targets, as the official code
        (and the published recipes) do; the default leaves them out.
        """
        texts = vocab.part_texts(self.config.text_style)
        loss = self.loss(batch["pixel_values"], batch["part_labels"], texts, ignore_index, faithful=faithful)
        return {"total": loss}


__all__ = [
    "CATSEG_TEMPLATE",
    "CONFIGS",
    "CatSeg",
    "CatSegAggregator",
    "CatSegConfig",
    "CatSegHeadConfig",
    "DROPPED_CLASS_LOGIT",
]
