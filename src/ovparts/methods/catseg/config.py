"""CAT-Seg's config: the aggregator sizes, the model config, the published CLIP architectures, the named configs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ...backbones.openai_fp16_text import check_text_precision
from ...backbones.resnet import ResNetConfig
from ...config_checks import as_json
from ...errors import ConfigError
from ...models.base import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from ...preprocessing import check_chain
from ...text.templates import TEMPLATE_SETS
from ...text.tiny_tokenizer import tiny_tokenizer_special_ids

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


# Sizes that the rest of the model config decides; the ``head`` dict holds only the aggregator's own sizes.
DERIVED_HEAD_FIELDS = ("text_dim", "appearance_dim", "decoder_guidance_dims", "prompts")

# The published CLIP architectures (OpenAI ViT-B/16 and ViT-L/14 at 336 px).
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
# A few small layers, for the random "tiny" configs (tests).
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


def aggregator_sizes(**changes: Any) -> dict[str, Any]:
    """The aggregator's own sizes (the CVPR defaults with ``changes``), without those the config derives."""
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
    head: dict[str, Any] = field(default_factory=aggregator_sizes)
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
            setattr(self, name, as_json(getattr(self, name)))
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


def random_config(clip: dict, **values: Any) -> dict[str, Any]:
    """Config values for a random-weight model of the CLIP architecture ``clip`` with the built-in tiny
    tokenizer: its BOS / EOS / PAD ids, whatever the embedding size (CAT-Seg and PartCATSeg)."""
    special = tiny_tokenizer_special_ids()
    text = {**clip["text_config"], **{k: v for k, v in special.items() if k != "vocab_size"}}
    text.setdefault("vocab_size", special["vocab_size"])
    return {
        "text_config": text,
        "vision_config": dict(clip["vision_config"]),
        "projection_dim": clip["projection_dim"],
        **values,
    }


# Named configs: all build RANDOMLY initialised models with the built-in tiny tokenizer (tests, benchmarks,
# training from scratch); real weights come through `ovparts convert catseg` and load with `weights=`.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": random_config(VIT_B16, tokenizer="tiny"),
    "vit-b": random_config(VIT_B16, tokenizer="tiny"),
    "vit-l": random_config(VIT_L14_336, image_size=336, guidance_layers=[7, 15], tokenizer="tiny"),
    "vit-b-old": random_config(
        VIT_B16,
        variant="old",
        dense_residual="token",
        guidance="resnet",
        guidance_layers=[],
        templates="imagenet",
        finetune="attention",
        head=aggregator_sizes(pad_len=0),
        tokenizer="tiny",
    ),
    "tiny": random_config(
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
    "tiny-old": random_config(
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
