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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...backbones.clip import ClipBackbone, build_clip, load_tokenizer
from ...backbones.clip_dense import apply_finetune
from ...backbones.openai_fp16_text import check_text_precision
from ...backbones.resnet import ResNet, ResNetConfig, renormalize
from ...errors import CheckpointError, ConfigError
from ...losses import catseg_bce_loss
from ...models.base import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelConfig,
    PartLogits,
    PartSegModel,
    Preprocess,
)
from ...models.chunking import resolve_class_chunk
from ...models.cost_aggregation import (
    ClassAggregation,
    CostEmbedding,
    GuidedUp,
    SpatialAggregation,
    cosine_cost,
    map_classes,
)
from ...models.registry import register_model
from ...models.stages import stage
from ...preprocessing import check_chain, encoder_input
from ...testing import tiny_tokenizer_folder, tiny_tokenizer_special_ids
from ...text.templates import TEMPLATE_SETS
from ...vocabulary import Vocabulary

# Logit given to classes that the top-k class selection dropped (official value).
DROPPED_CLASS_LOGIT = -100.0

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
    attention:
        Class-aggregation attention: ``"linear"`` (CAT-Seg) or ``"query"`` (PartCATSeg's override).
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
    attention: str = "linear"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from JSON
                setattr(self, f.name, tuple(value))
        if self.heads < 1 or self.hidden_dim % self.heads:
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

        def run(chunk: Tensor) -> Tensor:
            b, c, tc, h, w = chunk.shape

            def per_class(g: Tensor | None) -> Tensor | None:
                if g is None:
                    return None
                g = g.unsqueeze(1).expand(-1, tc, -1, -1, -1).flatten(0, 1)
                return g.contiguous(memory_format=channels_last)

            y = chunk.transpose(1, 2).reshape(b * tc, c, h, w).contiguous(memory_format=channels_last)
            y = self.decoder1(y, per_class(first))
            y = self.decoder2(y, per_class(second))
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

# Sizes that the rest of the model config decides; the ``head`` dict holds only the aggregator's own sizes.
DERIVED_HEAD_FIELDS = ("text_dim", "appearance_dim", "decoder_guidance_dims", "prompts")

VIT_B16 = {
    "text_config": {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "vocab_size": 49408,
        "hidden_act": "quick_gelu",
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
        "hidden_act": "quick_gelu",
    },
    "projection_dim": 512,
}
VIT_L14_336 = {
    "text_config": {
        **VIT_B16["text_config"],
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
    },
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
        "hidden_act": "quick_gelu",
    },
    "projection_dim": 768,
}
TINY_CLIP = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    },
    "projection_dim": 32,
}
TINY_HEAD = {
    "text_guidance_dim": 16,
    "appearance_guidance_dim": 16,
    "decoder_dims": (32, 16),
    "decoder_guidance_proj_dims": (8, 4),
    "hidden_dim": 32,
    "num_layers": 2,
    "heads": 4,
    "window": 4,
    "pad_len": 8,
}


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value


def _aggregator_sizes(**changes: Any) -> dict[str, Any]:
    values = {k: v for k, v in CatSegHeadConfig().to_dict().items() if k not in DERIVED_HEAD_FIELDS}
    return {**values, **changes}


@dataclass
class CatSegConfig(ModelConfig):
    """Everything needed to build a CAT-Seg model; saved as ``config.json`` next to the weights.

    Defaults are the CVPR ViT-B/16 release. ``variant`` records which release a checkpoint follows; the
    switches that differ between releases can also be set one by one:

    - ``dense_residual``: residual of CLIP's value-path last block, ``"cls"`` (CVPR) or ``"token"`` (old);
    - ``guidance``: ``"clip"`` (CVPR: dense CLIP features + transposed-conv upsamplings of the outputs of
      blocks ``guidance_layers``) or ``"resnet"`` (old: res4 / res3 / res2 of a ResNet-101 run on the
      ImageNet-normalised image);
    - ``templates``: ``"catseg"`` (one template, CVPR), ``"imagenet"`` (80 templates, each its own cost
      channel, old) or an explicit list of templates with ``{}``;
    - ``finetune``: trainable CLIP parameters, ``"qv"`` (CVPR), ``"attention"`` (old), ``"full"``, ``"none"``.

    Inference: ``image_size`` must give the feature grid the Swin window divides (384 for ViT-B/16, 336 for
    ViT-L/14 -> 24x24). The photo is first resized so its short edge is ``test_short_edge`` (long edge at
    most ``test_max_size``). ``sliding_window`` asks the Segmenter for the official evaluation: that image
    interpolated to ``sliding_canvas`` squared, covered by ``sliding_window_size`` windows at
    ``sliding_overlap``, plus a global view interpolated from it (each resized to ``image_size`` in the model). Without the sliding window the model zero-pads it to a multiple of
    ``size_divisibility`` and interpolates it to ``image_size`` (see ``docs/catseg.md``).
    """

    variant: str = "cvpr"
    text_config: dict[str, Any] = field(default_factory=lambda: dict(VIT_B16["text_config"]))
    vision_config: dict[str, Any] = field(default_factory=lambda: dict(VIT_B16["vision_config"]))
    projection_dim: int = 512
    image_size: int = 384
    dense_residual: str = "cls"
    guidance: str = "clip"
    guidance_layers: list[int] = field(default_factory=lambda: [3, 7])
    clip_guidance_dims: list[int] = field(default_factory=lambda: [256, 128])
    resnet: dict[str, Any] | None = None
    templates: str | list[str] = "catseg"
    text_style: str = "possessive"
    finetune: str = "qv"
    head: dict[str, Any] = field(default_factory=_aggregator_sizes)
    pixel_mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(CLIP_STD))
    resnet_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    resnet_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    sliding_window: bool = True
    sliding_canvas: int = 640
    sliding_overlap: float = 0.333
    sliding_window_size: int = 384  # official: 384 windows for every CLIP (resized to 336 for ViT-L/14)
    # Test-time chain (official test.yaml: INPUT.MIN/MAX_SIZE_TEST, MODEL.MASK_FORMER.SIZE_DIVISIBILITY);
    # test_short_edge None = resize the photo straight to image_size (not the official chain).
    test_short_edge: int | None = 640
    test_max_size: int | None = 2560
    size_divisibility: int = 32
    background_threshold: float = 0.5
    class_chunk: int | str = 32  # "auto": sized from free memory
    # "openai_fp16": text embeddings as the old release's predictor computes them (OpenAI's CLIP in fp16,
    # at construction); "fp32": ovparts' own text path (the CVPR release encodes in fp32 too).
    text_precision: str = "fp32"
    # "tiny" = the built-in byte-level tokenizer; None = the tokenizer files in the checkpoint folder.
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in ("cvpr", "old"):
            raise ConfigError(f"Unknown CAT-Seg variant {self.variant!r}; use 'cvpr' or 'old'.")
        if self.dense_residual not in ("cls", "token"):
            raise ConfigError(f"Unknown dense residual {self.dense_residual!r}; use 'cls' or 'token'.")
        if self.guidance not in ("clip", "resnet"):
            raise ConfigError(f"Unknown CAT-Seg guidance {self.guidance!r}; use 'clip' or 'resnet'.")
        check_text_precision(self.text_precision)
        if self.finetune not in ("qv", "attention", "full", "none"):
            raise ConfigError(f"Unknown fine-tuning mode {self.finetune!r}; use qv, attention, full or none.")
        if (
            isinstance(self.templates, str)
            and self.templates != "catseg"
            and self.templates not in TEMPLATE_SETS
        ):
            raise ConfigError(
                f"Unknown template set {self.templates!r}; use 'catseg', 'imagenet' or a list of templates."
            )
        check_chain(self.test_short_edge, self.test_max_size, self.size_divisibility)
        if not 0 < self.sliding_window_size <= self.sliding_canvas:
            raise ConfigError(
                f"sliding_window_size {self.sliding_window_size} must be between 1 and sliding_canvas "
                f"{self.sliding_canvas}."
            )
        if self.guidance == "resnet" and self.resnet is None:
            self.resnet = ResNetConfig().to_dict()
        self.head = {k: v for k, v in dict(self.head).items() if k not in DERIVED_HEAD_FIELDS}
        # JSON form (lists, not tuples) so that a saved and reloaded config compares equal
        for name in (
            "head",
            "resnet",
            "text_config",
            "vision_config",
            "guidance_layers",
            "clip_guidance_dims",
        ):
            setattr(self, name, _as_json(getattr(self, name)))
        if not isinstance(self.templates, str):
            self.templates = list(self.templates)
        self.head_config  # validates the sizes  # noqa: B018

    @property
    def template_list(self) -> tuple[str, ...]:
        if self.templates == "catseg":
            return (CATSEG_TEMPLATE,)
        if isinstance(self.templates, str):
            return tuple(TEMPLATE_SETS[self.templates])
        return tuple(self.templates)

    @property
    def resnet_config(self) -> ResNetConfig:
        return ResNetConfig(**self.resnet) if self.resnet is not None else ResNetConfig()

    @property
    def head_config(self) -> CatSegHeadConfig:
        """The aggregator config, with the sizes that follow from CLIP, guidance and templates filled in."""
        if self.guidance == "clip":
            appearance, decoder = self.projection_dim, tuple(self.clip_guidance_dims)
        else:
            outs = self.resnet_config.out_channels
            appearance, decoder = outs[-1], (outs[-2], outs[-3])
        derived = {
            "text_dim": self.projection_dim,
            "appearance_dim": appearance,
            "decoder_guidance_dims": decoder,
            "prompts": len(self.template_list),
        }
        return CatSegHeadConfig.from_dict({**self.head, **derived})


def _config(clip: dict, **values: Any) -> dict[str, Any]:
    # The random-weight configs use the tiny tokenizer: its BOS / EOS / PAD ids, whatever the embedding size.
    special = tiny_tokenizer_special_ids()
    text = {**clip["text_config"], **{k: v for k, v in special.items() if k != "vocab_size"}}
    text.setdefault("vocab_size", special["vocab_size"])
    return {
        "text_config": text,
        "vision_config": dict(clip["vision_config"]),
        "projection_dim": clip["projection_dim"],
        **values,
    }


CONFIGS: dict[str, dict[str, Any]] = {
    # Random-weight architectures; published weights come through `ovparts convert catseg`.
    "default": _config(VIT_B16, tokenizer="tiny"),
    "vit-b": _config(VIT_B16, tokenizer="tiny"),
    "vit-l": _config(VIT_L14_336, image_size=336, guidance_layers=[7, 15], tokenizer="tiny"),
    "vit-b-old": _config(
        VIT_B16,
        variant="old",
        dense_residual="token",
        guidance="resnet",
        guidance_layers=[],
        templates="imagenet",
        finetune="attention",
        head=_aggregator_sizes(pad_len=0),
        tokenizer="tiny",
    ),
    "tiny": _config(
        TINY_CLIP,
        image_size=32,
        guidance_layers=[0, 1],
        clip_guidance_dims=[16, 16],
        head=TINY_HEAD,
        sliding_canvas=48,
        sliding_window_size=32,
        class_chunk=4,
        tokenizer="tiny",
    ),
    "tiny-old": _config(
        {**TINY_CLIP, "vision_config": {**TINY_CLIP["vision_config"], "patch_size": 16}},  # ResNet stride 16
        variant="old",
        image_size=64,
        dense_residual="token",
        guidance="resnet",
        guidance_layers=[],
        resnet={"blocks": (1, 1, 1), "stem_width": 8, "width": 4},
        templates=["a photo of a {}.", "a drawing of the {}.", "{}"],
        finetune="attention",
        head={**TINY_HEAD, "pad_len": 0},
        sliding_canvas=96,
        sliding_window_size=64,
        class_chunk=4,
        tokenizer="tiny",
    ),
}


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


class CatSeg(PartSegModel):
    """CAT-Seg: one logit map per vocabulary entry at 4x the CLIP grid (96x96 at 384 px); no background.

    Without a background channel the Segmenter calls a pixel background where no part's probability
    reaches ``config.background_threshold``.
    """

    name = "catseg"
    config_class = CatSegConfig
    independent_classes = False  # class attention mixes the vocabulary's classes (docs/catseg.md)

    def __init__(self, config: CatSegConfig, tokenizer_folder: str | Path | None = None) -> None:
        super().__init__(config)
        if tokenizer_folder is None:
            if config.tokenizer != "tiny":
                raise CheckpointError(
                    "This CAT-Seg config needs a tokenizer folder; load it from a checkpoint."
                )
            tokenizer_folder = tiny_tokenizer_folder()
        clip = build_clip(config.text_config, config.vision_config, config.projection_dim)
        self.backbone = ClipBackbone(clip, load_tokenizer(tokenizer_folder))
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

    # ------------------------------------------------------------------ checkpoints
    def _save_extras(self, folder: Path) -> None:
        self.backbone.tokenizer.save_pretrained(str(folder))

    @classmethod
    def _build_for_checkpoint(cls, config: CatSegConfig, folder: Path) -> CatSeg:
        has_tokenizer = any((folder / name).is_file() for name in ("vocab.json", "tokenizer.json"))
        return cls(config, tokenizer_folder=folder if has_tokenizer else None)


register_model(
    "catseg",
    CatSeg,
    CONFIGS,
    default_weights=None,
    description="CAT-Seg (Cho et al., CVPR 2024): cost aggregation over CLIP; CVPR and old releases.",
)

__all__ = [
    "CATSEG_TEMPLATE",
    "CONFIGS",
    "CatSeg",
    "CatSegAggregator",
    "CatSegConfig",
    "CatSegHeadConfig",
    "DROPPED_CLASS_LOGIT",
]
