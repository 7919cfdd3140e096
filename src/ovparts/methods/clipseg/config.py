"""CLIPSeg's config: the dataclass, the published rd64-refined architecture and the named configs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ...models.base import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from ...text.tiny_tokenizer import tiny_tokenizer_special_ids

# A CLIPSeg small enough for unit tests (the random "tiny" config) yet with every structural feature
# of rd64-refined (patch 16 / 4 = transposed-convolution kernel 4, three extract layers, FiLM at layer 0).
TINY_CLIPSEG = {
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
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "image_size": 64,
        "patch_size": 16,
    },
    "projection_dim": 32,
    "extract_layers": [1, 2, 3],
    "reduce_dim": 16,
    "decoder_num_attention_heads": 2,
    "decoder_intermediate_size": 32,
    "use_complex_transposed_convolution": True,
}

# The architecture of CIDAS/clipseg-rd64-refined (ViT-B/16, 352 px), the architecture of the published
# weights and of the random "default" config (benchmarks at the published size).
RD64_REFINED = {
    "text_config": {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "vocab_size": 49408,
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
    },
    "projection_dim": 512,
    "extract_layers": [3, 6, 9],
    "reduce_dim": 64,
    "decoder_num_attention_heads": 4,
    "decoder_intermediate_size": 2048,
    "use_complex_transposed_convolution": True,
}


HF_DECODER_KEYS = (
    "projection_dim",
    "extract_layers",
    "reduce_dim",
    "decoder_num_attention_heads",
    "decoder_intermediate_size",
    "conditional_layer",
    "use_complex_transposed_convolution",
)


@dataclass
class ClipSegConfig(ModelConfig):
    text_config: dict[str, Any] = field(default_factory=dict)
    vision_config: dict[str, Any] = field(default_factory=dict)
    projection_dim: int = 512
    extract_layers: list[int] = field(default_factory=lambda: [3, 6, 9])
    reduce_dim: int = 64
    decoder_num_attention_heads: int = 4
    decoder_intermediate_size: int = 2048
    conditional_layer: int = 0
    use_complex_transposed_convolution: bool = True
    image_size: int = 352
    pixel_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    # "plain" = "dog head" (OV-PARTS), "possessive" = "dog's head"; templates: "none", "single", "imagenet"
    text_style: str = "plain"
    templates: str = "none"
    # OV-PARTS patches: a residual visual adapter on the activations, a learned background ("non-object") vector
    visual_adapter: bool = False
    non_object_embedding: bool = False
    # Without a background vector, a pixel is background where no part's probability reaches this value.
    background_threshold: float = 0.5
    # Classes decoded together; bounds memory for large vocabularies without changing the result.
    class_chunk: int | str = 8  # "auto": sized from free memory
    # "tiny" = the built-in byte-level tokenizer; None = the tokenizer files in the checkpoint folder.
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        check_decoder_layers(self.extract_layers, self.conditional_layer, self.vision_config)


def check_decoder_layers(extract_layers: list[int], conditional_layer: int, vision_config: object) -> None:
    """The decoder reads ``extract_layers`` and applies FiLM at ``conditional_layer``; both checked with the config.

    As in the official CLIPSeg, index ``i`` reads hidden state ``i + 1``: 0 to depth - 1 are the vision blocks'
    outputs and -1 the embeddings. Anything else used to pass the config and fail at the first image. A layer
    may be read twice (the official code allows it, and a reduced official parity model does it).
    """
    if not isinstance(extract_layers, list | tuple) or not extract_layers:
        raise ConfigError("extract_layers must list at least one vision layer for the decoder to read.")
    depth = vision_config.get("num_hidden_layers") if isinstance(vision_config, dict) else None
    if isinstance(depth, int) and not isinstance(depth, bool):
        outside = [i for i in extract_layers if not -1 <= i < depth]
        if outside:
            raise ConfigError(
                f"extract_layers {list(extract_layers)} names layer {outside[0]}, but the vision encoder's "
                f"layers are numbered 0 to {depth - 1} (-1: the embeddings)."
            )
    if not 0 <= conditional_layer < len(extract_layers):
        raise ConfigError(
            f"conditional_layer {conditional_layer} must index one of the {len(extract_layers)} decoder "
            f"blocks (0 to {len(extract_layers) - 1})."
        )


def architecture_config(architecture: dict, **extra: Any) -> dict[str, Any]:
    """Config values for a CLIPSeg architecture dict, with the built-in tiny tokenizer's token ids."""
    special = tiny_tokenizer_special_ids()
    text = {**special, **architecture["text_config"]}
    values = {k: v for k, v in architecture.items() if k in HF_DECODER_KEYS}
    return {"text_config": text, "vision_config": dict(architecture["vision_config"]), **values, **extra}


# Named configs. All build RANDOMLY initialised models with the built-in tiny tokenizer (tests, benchmarks,
# a starting point for training); real weights load with `weights=` (CIDAS/clipseg-rd64-refined by default).
# "default": rd64-refined's architecture; "ov-parts": the same + the OV-PARTS visual adapter and non-object
# vector; "tiny": a few small layers, for tests.
CONFIGS = {
    "default": architecture_config(RD64_REFINED, tokenizer="tiny"),
    "tiny": architecture_config(TINY_CLIPSEG, image_size=64, tokenizer="tiny", class_chunk=128),
    "ov-parts": architecture_config(
        RD64_REFINED, tokenizer="tiny", visual_adapter=True, non_object_embedding=True
    ),
}


def clipseg_hf_config(architecture: dict | None = None, special: dict[str, int] | None = None):
    """A transformers ``CLIPSegConfig`` for the given architecture dict, with the tokenizer ids ``special``
    (vocabulary size and BOS / EOS / PAD; the tiny tokenizer's by default)."""
    from transformers import CLIPSegConfig

    architecture = json.loads(json.dumps(architecture or TINY_CLIPSEG))
    text = architecture.pop("text_config")
    special = special or tiny_tokenizer_special_ids()
    text = (
        {**special, **text}
        if "vocab_size" not in text
        else {**special, **text, "vocab_size": text["vocab_size"]}
    )
    return CLIPSegConfig(text_config=text, vision_config=architecture.pop("vision_config"), **architecture)
