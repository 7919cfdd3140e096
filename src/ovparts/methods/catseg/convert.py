"""Official CAT-Seg checkpoints (CVPR 2024 and old arXiv releases) -> ovparts CAT-Seg weights + config.

The official files are detectron2 ``torch.save`` dicts with the weights under ``"model"``:

- ``sem_seg_head.predictor.clip_model.*``: OpenAI CLIP. The CVPR release splits attention input
  projections into ``q/k/v_proj_weight`` (bias still fused in ``in_proj_bias``); the old one keeps the fused
  ``in_proj_weight``. Both become ``transformers``' CLIP layout (separate q/k/v Linear layers, transposed
  projections).
- ``sem_seg_head.predictor.transformer.*``: the aggregator, renamed onto :class:`CatSegAggregator`.
- ``upsample1/2.*`` (CVPR): transposed-conv guidance upsamplers; ``backbone.*`` (old): detectron2 ResNet-101.

The key map is data (:data:`CLIP_RULES`, :data:`HEAD_RULES`, :data:`TOP_RULES`): each rule is
``(official regex, ovparts template, operation)``. :func:`convert_catseg_state_dict` is pure; it infers the
architecture from tensor shapes, reports official keys it did not use and ovparts keys it could not fill,
and checks every shape. The module declares :data:`CONVERTER`; reading, checking and writing are the shared
steps of :mod:`ovparts.convert`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor

from ...backbones.clip_dense import default_guidance_layers
from ...convert import Conversion, Converter, convert_checkpoint
from ...convert.conversion import settle
from ...convert.keynames import official_missing_names
from ...convert.rules import Rule, apply_rules, count_indices, map_state_dict, sub_dict, tensor_shape
from ...errors import CheckpointError
from ...models.cost_aggregation import shifted_window_mask

# Head sizes that CatSegConfig derives from CLIP, guidance and templates (not stored in its ``head`` dict).
DERIVED_HEAD_FIELDS = ("text_dim", "appearance_dim", "decoder_guidance_dims", "prompts")

CLIP_PREFIX = "backbone.clip."
# OpenAI CLIP's BPE: <|startoftext|>, <|endoftext|> (also used for padding by the transformers tokenizer).
OPENAI_SPECIAL_IDS = {"bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
HEAD_PREFIX = "head."

OFFICIAL_CLIP = "sem_seg_head.predictor.clip_model."
OFFICIAL_HEAD = "sem_seg_head.predictor.transformer."

# Rules are (official regex, ovparts template, operation); the operations are ovparts.convert.rules'.
_BLOCK_RULES: tuple[Rule, ...] = (
    (r"ln_1\.(?P<p>weight|bias)", r"layer_norm1.\g<p>", "copy"),
    (r"ln_2\.(?P<p>weight|bias)", r"layer_norm2.\g<p>", "copy"),
    (r"mlp\.c_fc\.(?P<p>weight|bias)", r"mlp.fc1.\g<p>", "copy"),
    (r"mlp\.c_proj\.(?P<p>weight|bias)", r"mlp.fc2.\g<p>", "copy"),
    (r"attn\.out_proj\.(?P<p>weight|bias)", r"self_attn.out_proj.\g<p>", "copy"),
    (r"attn\.(?P<x>[qkv])_proj_weight", r"self_attn.\g<x>_proj.weight", "copy"),
    (r"attn\.in_proj_(?P<p>weight|bias)", r"self_attn.{qkv}_proj.\g<p>", "split_qkv"),
)


def _blocks(official: str, ours: str) -> tuple[Rule, ...]:
    return tuple(
        (official + r"\.(?P<layer>\d+)\." + pat, ours + r".\g<layer>." + tpl, op)
        for pat, tpl, op in _BLOCK_RULES
    )


CLIP_RULES: tuple[Rule, ...] = (
    (r"visual\.class_embedding", "vision_model.embeddings.class_embedding", "copy"),
    (r"visual\.positional_embedding", "vision_model.embeddings.position_embedding.weight", "copy"),
    (r"visual\.conv1\.weight", "vision_model.embeddings.patch_embedding.weight", "copy"),
    (r"visual\.ln_pre\.(?P<p>weight|bias)", r"vision_model.pre_layrnorm.\g<p>", "copy"),
    (r"visual\.ln_post\.(?P<p>weight|bias)", r"vision_model.post_layernorm.\g<p>", "copy"),
    (r"visual\.proj", "visual_projection.weight", "transpose"),
    *_blocks(r"visual\.transformer\.resblocks", "vision_model.encoder.layers"),
    *_blocks(r"transformer\.resblocks", "text_model.encoder.layers"),
    (r"token_embedding\.weight", "text_model.embeddings.token_embedding.weight", "copy"),
    (r"positional_embedding", "text_model.embeddings.position_embedding.weight", "copy"),
    (r"ln_final\.(?P<p>weight|bias)", r"text_model.final_layer_norm.\g<p>", "copy"),
    (r"text_projection", "text_projection.weight", "transpose"),
    (r"logit_scale", "logit_scale", "copy"),
)

_L = r"layers\.(?P<l>\d+)\."
_P = r"(?P<p>weight|bias)"
HEAD_RULES: tuple[Rule, ...] = (
    (r"conv1\." + _P, r"cost_embed.conv.\g<p>", "copy"),
    (r"guidance_projection\.0\." + _P, r"guidance_proj.\g<p>", "copy"),
    (r"text_guidance_projection\.0\." + _P, r"text_guidance_proj.\g<p>", "copy"),
    (r"decoder_guidance_projection\.(?P<i>\d)\.0\." + _P, r"decoder_guidance_proj.\g<i>.\g<p>", "copy"),
    (
        _L + r"swin_block\.block_(?P<b>[12])\.(?P<m>norm[12]|attn\.(q|k|v|proj)|mlp\.fc[12])\." + _P,
        r"layers.\g<l>.spatial.block\g<b>.\g<m>.\g<p>",
        "copy",
    ),
    (_L + r"swin_block\.block_(?P<b>[12])\.attn_mask", "", "check_swin_mask"),
    (_L + r"swin_block\.guidance_norm\." + _P, r"layers.\g<l>.spatial.guidance_norm.\g<p>", "copy"),
    (_L + r"attention\.attention\.(?P<x>[qkv])\." + _P, r"layers.\g<l>.classes.attn.\g<x>.\g<p>", "copy"),
    (_L + r"attention\.MLP\.0\." + _P, r"layers.\g<l>.classes.mlp.fc1.\g<p>", "copy"),
    (_L + r"attention\.MLP\.2\." + _P, r"layers.\g<l>.classes.mlp.fc2.\g<p>", "copy"),
    (_L + r"attention\.norm(?P<n>[12])\." + _P, r"layers.\g<l>.classes.norm\g<n>.\g<p>", "copy"),
    (_L + r"attention\.padding_tokens", r"layers.\g<l>.classes.pad_token", "flatten"),
    (_L + r"attention\.padding_guidance", r"layers.\g<l>.classes.pad_guidance", "flatten"),
    (r"decoder(?P<d>[12])\.up\." + _P, r"decoder\g<d>.up.\g<p>", "copy"),
    (r"decoder(?P<d>[12])\.conv\.double_conv\.0\.weight", r"decoder\g<d>.conv1.weight", "copy"),
    (r"decoder(?P<d>[12])\.conv\.double_conv\.1\." + _P, r"decoder\g<d>.norm1.\g<p>", "copy"),
    (r"decoder(?P<d>[12])\.conv\.double_conv\.3\.weight", r"decoder\g<d>.conv2.weight", "copy"),
    (r"decoder(?P<d>[12])\.conv\.double_conv\.4\." + _P, r"decoder\g<d>.norm2.\g<p>", "copy"),
    (r"head\." + _P, r"head.\g<p>", "copy"),
)

TOP_RULES: tuple[Rule, ...] = (
    (r"upsample(?P<i>[12])\." + _P, r"clip_guidance.up\g<i>.\g<p>", "copy"),
    (r"backbone\.stem\.conv1\.(?P<rest>weight|norm\.\w+)", r"resnet.stem.\g<rest>", "copy"),
    (
        r"backbone\.(?P<rest>res[2-4]\.\d+\.(conv[123]|shortcut)\.(weight|norm\.\w+))",
        r"resnet.\g<rest>",
        "copy",
    ),
)

# (rules, official prefix, ovparts prefix): how each part of the official file maps (read backwards for messages).
RULE_TABLES = (
    (CLIP_RULES, OFFICIAL_CLIP, CLIP_PREFIX),
    (HEAD_RULES, OFFICIAL_HEAD, HEAD_PREFIX),
    (TOP_RULES, "", ""),
)

# Key fragments that mark checkpoints of methods built on CAT-Seg: (method, converter command).
FOREIGN_MARKERS = {
    "layers_specific_part.": ("PartCATSeg", "ovparts convert partcatseg"),
    "backbone.dinov2.": ("PartCATSeg", "ovparts convert partcatseg"),
}


def infer_clip_config(clip: Mapping[str, Tensor], vision_heads: int | None, text_heads: int | None) -> dict:
    """The ``transformers`` CLIPConfig (as a dict) that the OpenAI CLIP weights imply (heads = width / 64)."""
    vwidth, _, patch, _ = tensor_shape(clip, "visual.conv1.weight")
    positions = tensor_shape(clip, "visual.positional_embedding")[0]
    side = round((positions - 1) ** 0.5)
    vocab, twidth = tensor_shape(clip, "token_embedding.weight")
    context = tensor_shape(clip, "positional_embedding")[0]
    projection = tensor_shape(clip, "visual.proj")[1]
    vlayers = count_indices(clip, r"visual\.transformer\.resblocks\.(\d+)\.")
    tlayers = count_indices(clip, r"transformer\.resblocks\.(\d+)\.")
    vmlp = tensor_shape(clip, "visual.transformer.resblocks.0.mlp.c_fc.weight")[0]
    tmlp = tensor_shape(clip, "transformer.resblocks.0.mlp.c_fc.weight")[0]
    return {
        "projection_dim": projection,
        "vision_config": {
            "hidden_size": vwidth,
            "intermediate_size": vmlp,
            "num_hidden_layers": vlayers,
            "num_attention_heads": vision_heads or max(vwidth // 64, 1),
            "image_size": side * patch,
            "patch_size": patch,
            "hidden_act": "quick_gelu",
            "projection_dim": projection,
        },
        "text_config": {
            "hidden_size": twidth,
            "intermediate_size": tmlp,
            "num_hidden_layers": tlayers,
            "num_attention_heads": text_heads or max(twidth // 64, 1),
            "vocab_size": vocab,
            "max_position_embeddings": context,
            **OPENAI_SPECIAL_IDS,
            "hidden_act": "quick_gelu",
            "projection_dim": projection,
        },
    }


def infer_head_config(head: Mapping[str, Tensor]) -> dict:
    """The aggregator sizes that the official ``transformer.*`` tensors imply.

    The number of heads is not visible in any shape; the official configs all use 4. The Swin window is read
    from the stored shifted-window mask (windows x window^2 x window^2).
    """
    hidden, prompts = tensor_shape(head, "conv1.weight")[:2]
    text_g, text_dim = tensor_shape(head, "text_guidance_projection.0.weight")
    app_g, app_dim = tensor_shape(head, "guidance_projection.0.weight")[:2]
    dec_g = [tensor_shape(head, f"decoder_guidance_projection.{i}.0.weight")[:2] for i in range(2)]
    dec = [tensor_shape(head, f"decoder{i}.conv.double_conv.0.weight")[0] for i in (1, 2)]
    mask_key = next((k for k in head if k.endswith("block_2.attn_mask")), None)
    window = round(head[mask_key].shape[-1] ** 0.5) if mask_key else 12
    return {
        "text_dim": text_dim,
        "text_guidance_dim": text_g,
        "appearance_dim": app_dim,
        "appearance_guidance_dim": app_g,
        "decoder_dims": tuple(dec),
        "decoder_guidance_dims": tuple(d[1] for d in dec_g),
        "decoder_guidance_proj_dims": tuple(d[0] for d in dec_g),
        "hidden_dim": hidden,
        "num_layers": count_indices(head, r"layers\.(\d+)\."),
        "heads": 4,
        "window": window,
        "prompts": prompts,
        "pad_len": 256 if "layers.0.attention.padding_tokens" in head else 0,
    }


def infer_resnet_config(sd: Mapping[str, Tensor]) -> dict:
    stem = tensor_shape(sd, "backbone.stem.conv1.weight")[0]
    width = tensor_shape(sd, "backbone.res2.0.conv1.weight")[0]
    blocks = tuple(count_indices(sd, rf"backbone\.res{i}\.(\d+)\.") for i in (2, 3, 4))
    return {"blocks": blocks, "stem_width": stem, "width": width}


def detect_variant(sd: Mapping[str, Tensor]) -> str:
    """``"cvpr"`` when CLIP attention is split into q/k/v (and no ResNet), ``"old"`` when it is fused."""
    split = any(k.endswith("attn.q_proj_weight") for k in sd)
    resnet = any(k.startswith("backbone.res") for k in sd)
    return "old" if (resnet or not split) else "cvpr"


def convert_catseg_state_dict(
    official: Mapping[str, Tensor],
    vision_heads: int | None = None,
    text_heads: int | None = None,
) -> Conversion:
    """Map an official CAT-Seg state dict (either release) onto ovparts' CAT-Seg.

    Pure: reads tensors, returns new tensors (float32) and the config; nothing is loaded or saved. Raises
    :class:`CheckpointError` with one sentence when the dict is not a CAT-Seg checkpoint or shapes disagree.
    """
    for marker, (method, command) in FOREIGN_MARKERS.items():
        if any(k.startswith(marker) or ("." + marker) in k for k in official):
            raise CheckpointError(
                f"This is a {method} checkpoint, not a CAT-Seg one; convert it with `{command}`."
            )
    if not any(k.startswith(OFFICIAL_HEAD) for k in official):
        raise CheckpointError(
            "This is not a CAT-Seg checkpoint: it has no 'sem_seg_head.predictor.transformer.*' aggregator weights."
        )
    variant = detect_variant(official)
    clip_sd, head_sd = sub_dict(official, OFFICIAL_CLIP), sub_dict(official, OFFICIAL_HEAD)
    head_cfg = infer_head_config(head_sd)
    clip_cfg = infer_clip_config(clip_sd, vision_heads, text_heads)
    vision = clip_cfg["vision_config"]
    if head_cfg["prompts"] not in (1, 80):
        raise CheckpointError(
            f"The cost embedding has {head_cfg['prompts']} prompt channels; CAT-Seg uses 1 or 80."
        )
    config: dict = {
        "variant": variant,
        **clip_cfg,
        "image_size": clip_input_size(official, vision["patch_size"]),
        "dense_residual": "cls" if variant == "cvpr" else "token",
        "guidance": "clip" if variant == "cvpr" else "resnet",
        "guidance_layers": list(default_guidance_layers(vision["num_hidden_layers"]))
        if variant == "cvpr"
        else [],
        "templates": "catseg" if head_cfg["prompts"] == 1 else "imagenet",
        "finetune": "qv" if variant == "cvpr" else "attention",
        # the old release encodes its classes at construction with OpenAI's fp16 CLIP; the CVPR one in fp32
        "text_precision": "fp32" if variant == "cvpr" else "openai_fp16",
        "head": {k: v for k, v in head_cfg.items() if k not in DERIVED_HEAD_FIELDS},
        "tokenizer": None,
    }
    if variant == "cvpr":
        config["clip_guidance_dims"] = [tensor_shape(official, f"upsample{i}.weight")[1] for i in (1, 2)]
    else:
        config["resnet"] = infer_resnet_config(official)

    notes: list[str] = []

    def map_key(key: str, value: Tensor) -> list[tuple[str, Tensor]] | None:
        if key.startswith(OFFICIAL_CLIP):
            return apply_rules(key[len(OFFICIAL_CLIP) :], value, CLIP_RULES, CLIP_PREFIX)
        if key.startswith(OFFICIAL_HEAD):
            mapped = apply_rules(key[len(OFFICIAL_HEAD) :], value, HEAD_RULES, HEAD_PREFIX)
            if mapped == [] and key.endswith("attn_mask"):
                notes.extend(check_mask(key, value, head_cfg["window"]))
            return mapped
        return apply_rules(key, value, TOP_RULES, "")

    origins: dict[str, str] = {}
    out, leftover = map_state_dict(official, map_key, origins)
    unused, missing = settle(out, expected_shapes(config), origins, "CAT-Seg")
    return Conversion(
        "catseg",
        out,
        config,
        variant,
        unconsumed=sorted(leftover + unused),
        missing=missing,
        missing_official=official_missing_names(missing, RULE_TABLES),
        notes=notes,
        headline=f"CAT-Seg ({variant} version)",
    )


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the ovparts CAT-Seg state dict for a config (built on the meta device: no memory)."""
    return CONVERTER.expected_shapes(config)


def clip_input_size(official: Mapping[str, Tensor], patch: int) -> int:
    """CLIP input side: the aggregator's feature grid (from the Swin mask, else 24) times the patch size."""
    mask_key = next((k for k in official if k.endswith("block_2.attn_mask")), None)
    if mask_key is None:
        return 24 * patch
    windows, tokens = official[mask_key].shape[:2]
    side = round(windows**0.5) * round(tokens**0.5)
    return side * patch


def check_mask(key: str, mask: Tensor, window: int) -> list[str]:
    windows = mask.shape[0]
    side = round(windows**0.5) * window
    ours = shifted_window_mask(side, side, window, window // 2)
    if ours.shape != mask.shape or not torch.equal(ours, mask.float()):
        return [f"{key} differs from the shifted-window mask ovparts computes; results may differ slightly."]
    return []


DEFAULT_TOKENIZER = "openai/clip-vit-base-patch16"  # OpenAI's BPE, the one every CAT-Seg release uses

CONVERTER = Converter(
    method="catseg",
    title="CAT-Seg",
    convert=convert_catseg_state_dict,
    default_tokenizer=DEFAULT_TOKENIZER,
    help="""Convert an official CAT-Seg checkpoint (CVPR 2024 or old release, .pth) into OUT_DIR.

    \b
    Example:
      ovparts convert catseg model_base.pth catseg-vitb/
      ovparts segment photo.jpg --model catseg --weights catseg-vitb/ --vocab "cat: head, ear"
    """,
)
# The Python names of this converter's steps (the shared ones, bound to CAT-Seg).
load_official_checkpoint = CONVERTER.read


def convert_catseg_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike = DEFAULT_TOKENIZER,
    vision_heads: int | None = None,
    text_heads: int | None = None,
) -> Conversion:
    """Read an official ``.pth``, convert it, and save an ovparts checkpoint folder (with the tokenizer).

    Refuses (one sentence, :class:`CheckpointError`) when any ovparts weight would be left uninitialised.
    """
    return convert_checkpoint(
        CONVERTER, checkpoint, out_dir, tokenizer, vision_heads=vision_heads, text_heads=text_heads
    )
