"""Official PartCATSeg checkpoints -> ovparts PartCATSeg weights + config (``faithful=True``).

The official files (``kaist-cvml/part-catseg``) are detectron2 ``torch.save`` dicts, weights under ``"model"``:

- ``sem_seg_head.predictor.clip_model.*``: OpenAI CLIP of the old CAT-Seg (fused ``in_proj``), mapped with
  the CAT-Seg converter's rules onto ``transformers``' CLIP;
- ``sem_seg_head.predictor.transformer.*``: the aggregator; stage A uses CAT-Seg's names (same rules), plus
  ``conv2``, ``conv_proj_feat``, ``layers_specific_part.*`` and the never-called ``layers_object.*``;
- ``sem_seg_head.predictor.non_object_embedding``: the background text embedding (untrained; see the docs);
- ``backbone.dinov2.*``: DINOv2 in the torch.hub layout (fused ``attn.qkv``, ``ls1.gamma``, ``blocks.N``), mapped
  onto ``transformers``' ``Dinov2Model`` (separate q/k/v, ``layer_scale1.lambda1``, ``encoder.layer.N``).

:func:`convert_partcatseg_state_dict` is pure: official dict in, ovparts dict + config out, with the keys
it did not use and the ovparts keys it could not fill. The key maps are data (:data:`HEAD_EXTRA_RULES`,
:func:`dino_rules`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from torch import Tensor

from ...convert import Conversion, Converter, convert_checkpoint
from ...convert.conversion import settle
from ...convert.keynames import official_missing_names
from ...convert.rules import Rule, apply_rules, count_indices, map_state_dict, sub_dict, tensor_shape
from ...errors import CheckpointError
from ..catseg.convert import (
    CLIP_PREFIX,
    CLIP_RULES,
    DEFAULT_TOKENIZER,
    HEAD_PREFIX,
    HEAD_RULES,
    OFFICIAL_CLIP,
    OFFICIAL_HEAD,
    check_mask,
    clip_input_size,
    infer_clip_config,
    infer_head_config,
)

OFFICIAL_DINO = "backbone.dinov2."
OFFICIAL_BACKGROUND = "sem_seg_head.predictor.non_object_embedding"
DINO_PREFIX = "dino.encoder."
# Head sizes PartCatSegConfig derives itself (from CLIP, DINO and the templates) or fixes (no class padding).
DERIVED_HEAD_FIELDS = (
    "text_dim",
    "appearance_dim",
    "decoder_guidance_dims",
    "prompts",
    "pad_len",
    "attention",
)


def _renamed_layer_rules(official: str, ours: str) -> tuple[Rule, ...]:
    """CAT-Seg's ``layers.N.*`` rules re-targeted at another stack of the same layers."""
    rules = []
    for pattern, template, op in HEAD_RULES:
        if pattern.startswith(r"layers\."):
            rules.append((official + pattern[len(r"layers") :], ours + template[len("layers") :], op))
    return tuple(rules)


HEAD_EXTRA_RULES: tuple[Rule, ...] = (
    (r"conv2\.(?P<p>weight|bias)", r"cost_embed_specific.conv.\g<p>", "copy"),
    (r"conv_proj_feat\.(?P<p>weight|bias)", r"proj_feat.\g<p>", "copy"),
    *_renamed_layer_rules(r"layers_specific_part", "layers_specific"),
    *_renamed_layer_rules(r"layers_object", "layers_object"),
)


def dino_rules(new_layout: bool) -> tuple[Rule, ...]:
    """torch.hub DINOv2 names -> ``Dinov2Model`` names; ``new_layout``: transformers >= 5 attention names."""
    b = r"blocks\.(?P<n>\d+)\."
    t = r"encoder.layer.\g<n>."
    q, out = (
        ("attention.{qkv}_proj", "attention.o_proj")
        if new_layout
        else (
            "attention.attention.{qkv}",
            "attention.output.dense",
        )
    )
    split = "split_qkv" if new_layout else "split_qkv_long"  # q/k/v_proj or query/key/value
    return (
        (r"cls_token", "embeddings.cls_token", "copy"),
        (r"mask_token", "embeddings.mask_token", "mask_token"),
        (r"pos_embed", "embeddings.position_embeddings", "copy"),
        (r"patch_embed\.proj\.(?P<p>weight|bias)", r"embeddings.patch_embeddings.projection.\g<p>", "copy"),
        (b + r"norm(?P<i>[12])\.(?P<p>weight|bias)", t + r"norm\g<i>.\g<p>", "copy"),
        (b + r"attn\.qkv\.(?P<p>weight|bias)", t + q + r".\g<p>", split),
        (b + r"attn\.proj\.(?P<p>weight|bias)", t + out + r".\g<p>", "copy"),
        (b + r"ls(?P<i>[12])\.gamma", t + r"layer_scale\g<i>.lambda1", "copy"),
        (b + r"mlp\.fc(?P<i>[12])\.(?P<p>weight|bias)", t + r"mlp.fc\g<i>.\g<p>", "copy"),
        (r"norm\.(?P<p>weight|bias)", r"layernorm.\g<p>", "copy"),
    )


def _map_dino(
    key: str, value: Tensor, rules: tuple[Rule, ...], expected: Mapping
) -> list[tuple[str, Tensor]] | None:
    for pattern, template, op in rules:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        target = DINO_PREFIX + m.expand(template)
        if op == "copy":
            return [(target, value)]
        if op == "mask_token":  # hub (1, C) or (1, 1, C); ours whatever the installed version holds
            shape = expected.get(target)
            return [(target, value.reshape(shape) if shape is not None else value)]
        if value.shape[0] % 3:
            raise CheckpointError(
                f"{key} has shape {tuple(value.shape)}, which cannot be split into q, k, v."
            )
        chunks = value.chunk(3, dim=0)
        if op == "split_qkv":
            return [(target.replace("{qkv}", n), c) for n, c in zip("qkv", chunks, strict=True)]
        long = ("query", "key", "value")
        return [(target.replace("{qkv}", n), c) for n, c in zip(long, chunks, strict=True)]
    return None


def infer_dino_config(dino: Mapping[str, Tensor]) -> dict:
    """The ``Dinov2Config`` (as a dict) that hub DINOv2 weights imply (heads = width / 64, as every release)."""
    width = tensor_shape(dino, "cls_token")[-1]
    patch = tensor_shape(dino, "patch_embed.proj.weight")[-1]
    positions = tensor_shape(dino, "pos_embed")[1] - 1
    side = round(positions**0.5)
    hidden = tensor_shape(dino, "blocks.0.mlp.fc1.weight")[0]
    if "blocks.0.mlp.w12.weight" in dino:
        raise CheckpointError("SwiGLU DINOv2 (ViT-g) checkpoints are not supported by this converter.")
    return {
        "hidden_size": width,
        "num_hidden_layers": count_indices(dino, r"blocks\.(\d+)\."),
        "num_attention_heads": max(width // 64, 1),
        "mlp_ratio": hidden // width,
        "patch_size": patch,
        "image_size": side * patch,
        "layerscale_value": 1.0,
    }


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the ovparts PartCATSeg state dict for a config (built on the meta device)."""
    return CONVERTER.expected_shapes(config)


def convert_partcatseg_state_dict(
    official: Mapping[str, Tensor],
    vision_heads: int | None = None,
    text_heads: int | None = None,
    dino_heads: int | None = None,
) -> Conversion:
    """Map an official PartCATSeg state dict onto ovparts' PartCATSeg (``faithful=True``).

    Pure; raises :class:`CheckpointError` with one sentence when the dict is not a PartCATSeg checkpoint or
    a shape disagrees with the architecture read from the checkpoint itself.
    """
    if not any(k.startswith(OFFICIAL_HEAD + "layers_specific_part.") for k in official):
        hint = (
            " It looks like a CAT-Seg checkpoint; convert it with `ovparts convert catseg`."
            if any(k.startswith(OFFICIAL_HEAD) for k in official)
            else ""
        )
        raise CheckpointError(
            f"This is not a PartCATSeg checkpoint: it has no stage-B aggregator weights.{hint}"
        )
    if not any(k.startswith(OFFICIAL_DINO) for k in official):
        raise CheckpointError("This PartCATSeg checkpoint has no 'backbone.dinov2.*' weights.")
    clip_sd, head_sd, dino_sd = (
        sub_dict(official, OFFICIAL_CLIP),
        sub_dict(official, OFFICIAL_HEAD),
        sub_dict(official, OFFICIAL_DINO),
    )
    head_cfg = infer_head_config(head_sd)
    clip_cfg = infer_clip_config(clip_sd, vision_heads, text_heads)
    dino_cfg = infer_dino_config(dino_sd)
    if dino_heads:
        dino_cfg["num_attention_heads"] = dino_heads
    if head_cfg["prompts"] != 80:
        raise CheckpointError(
            f"The cost embedding has {head_cfg['prompts']} prompt channels; PartCATSeg uses 80."
        )
    if head_cfg["appearance_dim"] != dino_cfg["hidden_size"]:
        raise CheckpointError(
            f"The guidance projection reads {head_cfg['appearance_dim']} channels but DINO has "
            f"{dino_cfg['hidden_size']}; the checkpoint is inconsistent."
        )
    patch = clip_cfg["vision_config"]["patch_size"]
    config: dict = {
        "faithful": True,
        **clip_cfg,
        "image_size": clip_input_size(official, patch),
        "dino_kind": "dinov2",
        "dino_config": dino_cfg,
        "templates": "imagenet",
        "text_precision": "openai_fp16",  # the official predictor encodes its classes with the fp16 CLIP
        "head": {
            **{k: v for k, v in head_cfg.items() if k not in DERIVED_HEAD_FIELDS},
            "pooling_train": (2, 2),
            "pooling_eval": (2, 2),
        },
        "tokenizer": None,
    }
    expected = expected_shapes(config)
    new_layout = any(".attention.q_proj." in k for k in expected)
    dino_map = dino_rules(new_layout)

    notes: list[str] = []

    def map_key(key: str, value: Tensor) -> list[tuple[str, Tensor]] | None:
        if key.startswith(OFFICIAL_CLIP):
            return apply_rules(key[len(OFFICIAL_CLIP) :], value, CLIP_RULES, CLIP_PREFIX)
        if key.startswith(OFFICIAL_HEAD):
            sub = key[len(OFFICIAL_HEAD) :]
            mapped = apply_rules(sub, value, HEAD_RULES + HEAD_EXTRA_RULES, HEAD_PREFIX)
            if mapped == [] and key.endswith("attn_mask"):
                notes.extend(check_mask(key, value, head_cfg["window"]))
            return mapped
        if key == OFFICIAL_BACKGROUND:
            return [("background_embedding", value.reshape(-1))]
        if key.startswith(OFFICIAL_DINO):
            return _map_dino(key[len(OFFICIAL_DINO) :], value, dino_map, expected)
        return None

    origins: dict[str, str] = {}
    out, leftover = map_state_dict(official, map_key, origins)
    if any(k.startswith("head.layers_object.") and k not in expected for k in out):
        notes.append(
            f"{OFFICIAL_HEAD}layers_object.* (never called by the official forward) was not converted."
        )
    unused, missing = settle(out, expected, origins, "PartCATSeg")  # drops e.g. layers_object
    tables = (
        (CLIP_RULES, OFFICIAL_CLIP, CLIP_PREFIX),
        (HEAD_RULES + HEAD_EXTRA_RULES, OFFICIAL_HEAD, HEAD_PREFIX),
        (dino_map, OFFICIAL_DINO, DINO_PREFIX),
        (((re.escape(OFFICIAL_BACKGROUND), "background_embedding", "copy"),), "", ""),
    )
    return Conversion(
        "partcatseg",
        out,
        config,
        "faithful",
        unconsumed=sorted(leftover + unused),
        missing=missing,
        missing_official=official_missing_names(missing, tables),
        notes=notes,
        headline="PartCATSeg (faithful config)",
    )


CONVERTER = Converter(
    method="partcatseg",
    title="PartCATSeg",
    convert=convert_partcatseg_state_dict,
    default_tokenizer=DEFAULT_TOKENIZER,
    build_options={"load_dino": False},  # DINOv2's weights come from the official file, not the hub
    help="""Convert an official PartCATSeg checkpoint (.pth, CLIP + DINOv2 + aggregator) into OUT_DIR.

    \b
    Example:
      ovparts convert partcatseg partcatseg_voc.pth partcatseg-voc/
      ovparts segment photo.jpg --model partcatseg --weights partcatseg-voc/ --vocab "cat: head, ear"
    """,
)


def convert_partcatseg_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer: str | os.PathLike = DEFAULT_TOKENIZER,
) -> Conversion:
    """Read an official ``.pth`` (``weights_only=True``), convert it, save an ovparts checkpoint folder.

    Refuses (one sentence) when any ovparts weight would be left uninitialised.
    """
    return convert_checkpoint(CONVERTER, checkpoint, out_dir, tokenizer)
