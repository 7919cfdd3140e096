"""CAT-Seg: cost aggregation for open-vocabulary segmentation (Cho et al., CVPR 2024).

Reads top to bottom as the paper's figure: a cosine cost volume between dense CLIP image features and the
class text embeddings -> a 7x7 cost embedding -> N x (spatial aggregation per class, class aggregation per
pixel) -> a guided upsampling decoder -> one logit map per class at 4x the feature grid.

:class:`CatSegAggregator` is the *head*: it takes tensors only (image features, text embeddings,
guidance maps) and can be built from :class:`CatSegHeadConfig` alone, without any backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones.resnet import IMAGENET_MEAN, IMAGENET_STD, ResNetConfig
from ..errors import ConfigError
from ..templates import IMAGENET_TEMPLATES
from .catseg_blocks import (
    ClassAggregation,
    CostEmbedding,
    GuidedUp,
    SpatialAggregation,
    class_slices,
    cosine_cost,
)

# Logit given to classes that the top-k class selection dropped (official value).
DROPPED_CLASS_LOGIT = -100.0

# CLIP's pixel statistics in 0-255 units (official CLIP_PIXEL_MEAN / CLIP_PIXEL_STD).
CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.3231630)

# The CVPR configs' PROMPT_ENSEMBLE_TYPE "single"; the old version uses the 80 ImageNet templates.
CATSEG_TEMPLATE = "A photo of a {} in the scene"


@dataclass
class CatSegHeadConfig:
    """Sizes of the CAT-Seg aggregator. Defaults are the CVPR ViT-B/16 checkpoint (``configs/vitb_384.yaml``).

    Attributes
    ----------
    text_dim, appearance_dim:
        Width of the text embeddings and of the appearance guidance (CLIP projection width for the CVPR
        version; 1024 for the old version's ResNet-101 res4).
    decoder_guidance_dims:
        Channels of the two decoder guidance maps (at 2x and 4x the grid), projected to
        ``decoder_guidance_proj_dims`` before concatenation.
    prompts:
        Number of prompt templates P: the cost volume has P channels per class (1 CVPR, 80 old).
    pooling_train, pooling_eval:
        Average pooling before class aggregation. The official training uses (2, 2) and evaluation (1, 1).
    pad_len:
        Fixed class-sequence length for class aggregation (CVPR: 256, old: 0 = off). Shorter vocabularies
        are padded with a learnt token; longer ones keep the ``pad_len`` classes with the highest raw cost
        and give the others a logit of -100.
    class_chunk:
        Default number of classes processed together by the per-class blocks (0 = all). Only memory
        changes, never the result.
    """

    text_dim: int = 512
    text_guidance_dim: int = 128
    appearance_dim: int = 512
    appearance_guidance_dim: int = 128
    decoder_dims: tuple[int, int] = (64, 32)
    decoder_guidance_dims: tuple[int, int] = (256, 128)
    decoder_guidance_proj_dims: tuple[int, int] = (32, 16)
    hidden_dim: int = 128
    num_layers: int = 2
    heads: int = 4
    window: int = 12
    prompts: int = 1
    pooling_train: tuple[int, int] = (2, 2)
    pooling_eval: tuple[int, int] = (1, 1)
    pad_len: int = 256
    class_chunk: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from JSON
                setattr(self, f.name, tuple(value))
        if self.hidden_dim % self.heads:
            raise ConfigError(f"hidden_dim {self.hidden_dim} must be divisible by heads {self.heads}.")
        if self.prompts < 1:
            raise ConfigError("CAT-Seg needs at least one prompt template (prompts >= 1).")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CatSegHeadConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown CAT-Seg head setting(s): {', '.join(unknown)}.")
        return cls(**data)


VARIANTS = ("cvpr", "old")
TEMPLATE_SETS = ("single", "imagenet")


@dataclass
class CatSegConfig:
    """Everything needed to build a CAT-Seg model; saved as ``config.json`` next to the weights.

    Attributes
    ----------
    variant:
        ``"cvpr"`` (CVPR 2024 release) or ``"old"`` (arXiv release, the OV-PARTS baseline and PartCATSeg's
        starting point). It sets the defaults of the switches below, which may also be set one by one.
    clip:
        A ``transformers`` ``CLIPConfig`` as a dict (random or converted weights), or a hub id / folder to
        load pretrained CLIP from.
    image_size:
        CLIP input side: 384 for ViT-B/16 and 336 for ViT-L/14 give the 24x24 grid the Swin windows expect.
    dense_residual:
        Residual of the value-path last block: ``"cls"`` (CVPR) or ``"token"`` (old).
    guidance:
        ``"clip"``: appearance guidance = dense CLIP features, decoder guidance = transposed-conv upsamplings
        of the ``guidance_layers`` outputs (CVPR). ``"resnet"``: res4 / res3 / res2 of a ResNet on the
        ImageNet-normalised image (old).
    templates:
        ``"single"`` (``CATSEG_TEMPLATE``, P = 1), ``"imagenet"`` (80 templates, each its own cost channel) or
        an explicit list of templates with ``{}`` for the class name.
    finetune:
        Trainable CLIP parameters: ``"qv"`` (CVPR), ``"attention"`` (old), ``"full"`` or ``"none"``.
    """

    variant: str = "cvpr"
    clip: dict | str = "openai/clip-vit-base-patch16"
    image_size: int = 384
    dense_residual: str = "cls"
    guidance: str = "clip"
    guidance_layers: tuple[int, ...] = (3, 7)
    clip_guidance_dims: tuple[int, int] = (256, 128)
    resnet: dict | None = None
    templates: str | tuple[str, ...] = "single"
    finetune: str = "qv"
    head: dict = field(default_factory=lambda: CatSegHeadConfig().to_dict())
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resnet_mean: tuple[float, float, float] = IMAGENET_MEAN
    resnet_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        if isinstance(self.head, CatSegHeadConfig):
            self.head = self.head.to_dict()
        if self.variant not in VARIANTS:
            raise ConfigError(f"Unknown CAT-Seg variant {self.variant!r}; use 'cvpr' or 'old'.")
        if self.guidance not in ("clip", "resnet"):
            raise ConfigError(f"Unknown CAT-Seg guidance {self.guidance!r}; use 'clip' or 'resnet'.")
        if isinstance(self.templates, str) and self.templates not in TEMPLATE_SETS:
            raise ConfigError(f"Unknown template set {self.templates!r}; use 'single', 'imagenet' or a list.")
        if self.guidance == "resnet" and self.resnet is None:
            self.resnet = ResNetConfig().to_dict()
        head = self.head_config
        if head.prompts != len(self.template_list):
            raise ConfigError(
                f"The head expects {head.prompts} prompt template(s) but {len(self.template_list)} are configured."
            )

    @property
    def head_config(self) -> CatSegHeadConfig:
        return CatSegHeadConfig.from_dict(dict(self.head))

    @property
    def template_list(self) -> tuple[str, ...]:
        if self.templates == "single":
            return (CATSEG_TEMPLATE,)
        if self.templates == "imagenet":
            return tuple(IMAGENET_TEMPLATES)
        return tuple(self.templates)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CatSegConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown CAT-Seg setting(s): {', '.join(unknown)}.")
        return cls(**data)


class CatSegLayer(nn.Module):
    """Spatial aggregation (per class) followed by class aggregation (per pixel)."""

    def __init__(self, cfg: CatSegHeadConfig) -> None:
        super().__init__()
        self.spatial = SpatialAggregation(cfg.hidden_dim, cfg.appearance_guidance_dim, cfg.heads, cfg.window)
        self.classes = ClassAggregation(cfg.hidden_dim, cfg.text_guidance_dim, cfg.heads, cfg.pad_len)

    def forward(
        self,
        x: Tensor,
        appearance: Tensor | None,
        text: Tensor | None,
        pool: tuple[int, int],
        class_chunk: int | None,
    ) -> Tensor:
        x = self.spatial(x, appearance, class_chunk)
        return self.classes(x, text, pool)


class CatSegAggregator(nn.Module):
    """The CAT-Seg head: image features x text embeddings -> per-class logits at 4x the feature grid.

    ``forward(image, text, guidance)``:

    - ``image`` (B, C, H, W): dense CLIP features (projection space, e.g. 512 x 24 x 24);
    - ``text`` (B, T, P, C) or (T, P, C): class embeddings, P prompt templates;
    - ``guidance``: (appearance (B, A, H, W), decoder guidance at 2x (B, D1, 2H, 2W) and 4x (B, D2, 4H, 4W));
    - returns logits (B, T, 4H, 4W).
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
        self, guidance: Sequence[Tensor | None]
    ) -> tuple[Tensor | None, list[Tensor | None]]:
        """Appearance guidance for the Swin blocks and the two decoder guidance maps, projected + ReLU."""
        appearance = guidance[0] if len(guidance) > 0 else None
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
        """Template-averaged, re-normalised text embedding, projected + ReLU: (B, T, text_guidance_dim)."""
        if self.text_guidance_proj is None:
            return None
        return F.relu(self.text_guidance_proj(F.normalize(text.mean(dim=2), dim=-1)))

    def decode(self, x: Tensor, guidance: Sequence[Tensor | None], class_chunk: int | None = None) -> Tensor:
        """Aggregated cost (B, C, T, H, W) -> logits (B, T, 4H, 4W), a chunk of classes at a time."""
        b, c, t, h, w = x.shape
        outs = []
        for s in class_slices(t, class_chunk):
            tc = s.stop - s.start

            def per_class(g: Tensor | None, tc: int = tc) -> Tensor | None:
                return None if g is None else g.unsqueeze(1).expand(-1, tc, -1, -1, -1).flatten(0, 1)

            y = x[:, :, s].transpose(1, 2).reshape(b * tc, c, h, w)
            y = self.decoder1(y, per_class(guidance[0]))
            y = self.decoder2(y, per_class(guidance[1]))
            outs.append(self.head(y).reshape(b, tc, *y.shape[-2:]))
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]

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
        text = F.normalize(text, dim=-1)
        num_classes = text.shape[1]
        keep = self.select_classes(image, text)
        if keep is not None:
            text = torch.gather(text, 1, keep[:, :, None, None].expand(-1, -1, *text.shape[2:]))

        x = self.cost_embed(cosine_cost(image, text), chunk)
        appearance, dec_guidance = self.project_guidance(guidance)
        text_guidance = self.text_guidance(text)
        pool = cfg.pooling_train if self.training else cfg.pooling_eval
        for layer in self.layers:
            x = layer(x, appearance, text_guidance, pool, chunk)
        logits = self.decode(x, dec_guidance, chunk)

        if keep is not None:
            full = logits.new_full((logits.shape[0], num_classes, *logits.shape[2:]), DROPPED_CLASS_LOGIT)
            logits = full.scatter(1, keep[:, :, None, None].expand(-1, -1, *logits.shape[2:]), logits)
        return logits


__all__ = ["CATSEG_TEMPLATE", "CatSegAggregator", "CatSegConfig", "CatSegHeadConfig", "DROPPED_CLASS_LOGIT"]
