"""PartCATSeg's config: the faithful switches, the model config (CLIP ViT-B/16 + DINOv2-S), the named configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...backbones.dino import DINOV2_SMALL, TINY_DINOV2
from ...backbones.openai_fp16_text import check_text_precision
from ...config_checks import as_json
from ...errors import ConfigError
from ...models.base import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from ...models.chunking import check_class_chunk
from ...models.losses import BACKGROUND_WEIGHT
from ...preprocessing import check_chain
from ...text.templates import TEMPLATE_SETS
from ..catseg.config import TINY_CLIP, VIT_B16, CatSegHeadConfig, random_config

# What ``faithful`` decides when a switch is left at None: (faithful value, default value).
SWITCHES: dict[str, tuple[Any, Any]] = {
    "object_layers": ("shared", "separate"),  # stage A: one stack for parts+objects, or one each
    "class_attention": ("query", "linear"),  # the official hard-coded override vs the config's "linear"
    "background": ("fixed", "learned"),  # untrained random background embedding vs a trained one
    "dense_residual": ("token", "cls"),  # old CAT-Seg's CLIP value path vs the CVPR one
    "dino_hub_interpolation": (True, False),  # torch.hub DINOv2 position-table resize (offset 0.1)
}


def head_sizes(**changes: Any) -> dict[str, Any]:
    """Aggregator sizes of the official Pascal config (``partcatseg_voc.yaml``), overridable."""
    values = {
        "text_guidance_dim": 128,
        "appearance_guidance_dim": 128,
        "decoder_dims": (64, 32),
        "decoder_guidance_proj_dims": (32, 16),
        "hidden_dim": 128,
        "num_layers": 2,
        "heads": 4,
        "window": 12,
        "pooling_train": (2, 2),
        "pooling_eval": (2, 2),  # PartCATSeg evaluates with the training pooling (unlike CAT-Seg)
        "class_chunk": 0,
    }
    return as_json({**values, **changes})


@dataclass
class PartCatSegConfig(ModelConfig):
    """Everything needed to build PartCATSeg; saved as ``config.json`` beside the weights.

    ``faithful`` picks the official behaviour for every switch left at ``None`` (``object_layers``,
    ``class_attention``, ``background``, ``dense_residual``, ``dino_hub_interpolation``; see
    :data:`SWITCHES`). ``pred_all``: ``"parts"`` (official: Pred-All is the argmax over object-specific parts
    and background) or ``"objects"`` (the Segmenter gates parts by the predicted object, as PartCLIPSeg).
    ``dino_weights`` (hub id or folder) initialises DINO when a model is built for training; checkpoints carry
    their own DINO weights.
    """

    faithful: bool = False
    text_config: dict[str, Any] = field(default_factory=lambda: dict(VIT_B16["text_config"]))
    vision_config: dict[str, Any] = field(default_factory=lambda: dict(VIT_B16["vision_config"]))
    projection_dim: int = 512
    image_size: int = 384
    dino_kind: str = "dinov2"
    dino_config: dict[str, Any] = field(default_factory=lambda: dict(DINOV2_SMALL))
    dino_weights: str | None = None
    dino_image_size: int = 448
    dino_lr_multiplier: float = 0.01
    templates: str | list[str] = "imagenet"
    text_style: str = "possessive"
    head: dict[str, Any] = field(default_factory=head_sizes)
    object_layers: str | None = None
    class_attention: str | None = None
    background: str | None = None
    dense_residual: str | None = None
    dino_hub_interpolation: bool | None = None
    pred_all: str = "parts"
    background_weight: float = BACKGROUND_WEIGHT
    pixel_mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(CLIP_STD))
    dino_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    dino_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    sliding_window: bool = False  # the official evaluation resizes the whole image once
    # Test-time chain (official configs: INPUT.MIN/MAX_SIZE_TEST 640/768, MODEL.MASK_FORMER.SIZE_DIVISIBILITY
    # 32); test_short_edge None = resize the photo straight to image_size (not the official chain).
    test_short_edge: int | None = 640
    test_max_size: int | None = 768
    size_divisibility: int = 32
    class_chunk: int | str = 32  # "auto": sized from free memory
    # "openai_fp16": text embeddings as the official predictor computes them (OpenAI's CLIP in fp16, at
    # construction; what the published checkpoints saw); "fp32": ovparts' own text path.
    text_precision: str = "fp32"
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        check_text_precision(self.text_precision)
        allowed = {
            "object_layers": ("shared", "separate"),
            "class_attention": ("query", "linear"),
            "background": ("fixed", "learned"),
            "dense_residual": ("token", "cls"),
            "pred_all": ("parts", "objects"),
        }
        for name, options in allowed.items():
            value = getattr(self, name)
            if value is not None and value not in options:
                raise ConfigError(f"Unknown {name} {value!r}; use {' or '.join(map(repr, options))}.")
        if isinstance(self.templates, str) and self.templates not in TEMPLATE_SETS:
            raise ConfigError(
                f"Unknown template set {self.templates!r}; use 'imagenet' or a list of templates."
            )
        if not isinstance(self.templates, str):
            self.templates = list(self.templates)
        check_chain(self.test_short_edge, self.test_max_size, self.size_divisibility)
        check_class_chunk(self.class_chunk)
        for name in ("head", "text_config", "vision_config", "dino_config"):
            setattr(self, name, as_json(dict(getattr(self, name))))
        self.head_config  # validates the sizes  # noqa: B018

    def switch(self, name: str) -> Any:
        """The effective value of a faithful/default switch."""
        value = getattr(self, name)
        if value is not None:
            return value
        faithful, default = SWITCHES[name]
        return faithful if self.faithful else default

    @property
    def template_list(self) -> tuple[str, ...]:
        if isinstance(self.templates, str):
            return tuple(TEMPLATE_SETS[self.templates])
        return tuple(self.templates)

    @property
    def dino_width(self) -> int:
        return int(self.dino_config.get("hidden_size", 768))

    @property
    def head_config(self) -> CatSegHeadConfig:
        """CAT-Seg aggregator sizes with DINO as every guidance, no class padding, the chosen attention."""
        derived = {
            "text_dim": self.projection_dim,
            "appearance_dim": self.dino_width,
            "decoder_guidance_dims": (self.dino_width, self.dino_width),
            "prompts": len(self.template_list),
            "pad_len": 0,
            "attention": self.switch("class_attention"),
        }
        return CatSegHeadConfig.from_dict({**self.head, **derived})


TINY_TEMPLATES = ["a photo of a {}.", "a drawing of the {}.", "{}"]

# Named configs: all build RANDOMLY initialised models (CLIP ViT-B/16 + DINOv2-S, or tiny ones for tests)
# with the built-in tiny tokenizer; published weights come through `ovparts convert partcatseg`.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": random_config(VIT_B16, tokenizer="tiny"),
    "official": random_config(VIT_B16, faithful=True, tokenizer="tiny"),
    "tiny": random_config(
        TINY_CLIP,
        image_size=32,
        dino_config=TINY_DINOV2,
        dino_image_size=32,
        templates=TINY_TEMPLATES,
        head=head_sizes(
            text_guidance_dim=16,
            appearance_guidance_dim=16,
            decoder_dims=(32, 16),
            decoder_guidance_proj_dims=(8, 4),
            hidden_dim=32,
            window=4,
        ),
        class_chunk=4,
        tokenizer="tiny",
    ),
}
CONFIGS["tiny-official"] = {**CONFIGS["tiny"], "faithful": True}
