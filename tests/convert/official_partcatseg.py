"""Synthetic official PartCATSeg state dicts: the official key names (as the official module definitions name them), tiny shapes.

CLIP and the stage-A aggregator reuse the CAT-Seg descriptions; DINOv2 is written in the torch.hub layout
(``blocks.N.attn.qkv``, ``ls1.gamma``), independently of transformers' module names.
"""

from __future__ import annotations

import torch

from .official_catseg import HIDDEN, PROJ, VOCAB, _ln, _r, official_aggregator, official_clip

DINO_WIDTH, DINO_PATCH, DINO_SIDE, DINO_LAYERS = 64, 8, 4, 2  # heads = width / 64 = 1, as every release
PROMPTS = 80


def official_dinov2(width: int = DINO_WIDTH, layers: int = DINO_LAYERS) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {
        "cls_token": _r(1, 1, width),
        "mask_token": _r(1, width),
        "pos_embed": _r(1, DINO_SIDE * DINO_SIDE + 1, width),
        "patch_embed.proj.weight": _r(width, 3, DINO_PATCH, DINO_PATCH),
        "patch_embed.proj.bias": _r(width),
    }
    for i in range(layers):
        b = f"blocks.{i}"
        _ln(sd, f"{b}.norm1", width)
        _ln(sd, f"{b}.norm2", width)
        sd[f"{b}.attn.qkv.weight"] = _r(3 * width, width)
        sd[f"{b}.attn.qkv.bias"] = _r(3 * width)
        sd[f"{b}.attn.proj.weight"] = _r(width, width)
        sd[f"{b}.attn.proj.bias"] = _r(width)
        sd[f"{b}.ls1.gamma"] = 0.5 + _r(width)
        sd[f"{b}.ls2.gamma"] = 0.5 + _r(width)
        sd[f"{b}.mlp.fc1.weight"] = _r(4 * width, width)
        sd[f"{b}.mlp.fc1.bias"] = _r(4 * width)
        sd[f"{b}.mlp.fc2.weight"] = _r(width, 4 * width)
        sd[f"{b}.mlp.fc2.bias"] = _r(width)
    _ln(sd, "norm", width)
    return sd


def official_partcatseg(seed: int = 0, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """A whole official-layout PartCATSeg state dict (old CAT-Seg CLIP, DINOv2 guidance, two stacks)."""
    torch.manual_seed(seed)
    clip = official_clip(split=False, vocab=vocab)
    agg = official_aggregator(PROMPTS, DINO_WIDTH, (DINO_WIDTH, DINO_WIDTH), pad=False)
    for key in [k for k in agg if k.startswith("layers.")]:
        rest = key[len("layers.") :]
        for stack in ("layers_specific_part", "layers_object"):
            value = agg[key]
            agg[f"{stack}.{rest}"] = value.clone() if key.endswith("attn_mask") else _r(*value.shape)
    agg["conv2.weight"] = _r(HIDDEN, PROMPTS, 7, 7)
    agg["conv2.bias"] = _r(HIDDEN)
    agg["conv_proj_feat.weight"] = _r(PROJ, 2 * HIDDEN, 1, 1)
    agg["conv_proj_feat.bias"] = _r(PROJ)
    sd = {f"sem_seg_head.predictor.clip_model.{k}": v for k, v in clip.items()}
    sd.update({f"sem_seg_head.predictor.transformer.{k}": v for k, v in agg.items()})
    sd["sem_seg_head.predictor.non_object_embedding"] = _r(1, PROJ)
    sd.update({f"backbone.dinov2.{k}": v for k, v in official_dinov2().items()})
    return sd


def hub_dinov2_tokens(
    sd: dict[str, torch.Tensor], pixels: torch.Tensor, layers: int = DINO_LAYERS
) -> torch.Tensor:
    """Final-LayerNorm patch tokens of a hub-layout DINOv2 at its native grid, written from the hub's math."""
    f = torch.nn.functional
    width = sd["cls_token"].shape[-1]
    x = f.conv2d(pixels, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=DINO_PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + sd["pos_embed"]
    for i in range(layers):
        b = f"blocks.{i}"
        y = f.layer_norm(x, (width,), sd[f"{b}.norm1.weight"], sd[f"{b}.norm1.bias"], eps=1e-6)
        q, k, v = f.linear(y, sd[f"{b}.attn.qkv.weight"], sd[f"{b}.attn.qkv.bias"]).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(1, 2) / width**0.5, dim=-1) @ v  # one head
        x = x + sd[f"{b}.ls1.gamma"] * f.linear(attn, sd[f"{b}.attn.proj.weight"], sd[f"{b}.attn.proj.bias"])
        y = f.layer_norm(x, (width,), sd[f"{b}.norm2.weight"], sd[f"{b}.norm2.bias"], eps=1e-6)
        y = f.linear(
            f.gelu(f.linear(y, sd[f"{b}.mlp.fc1.weight"], sd[f"{b}.mlp.fc1.bias"])),
            sd[f"{b}.mlp.fc2.weight"],
            sd[f"{b}.mlp.fc2.bias"],
        )
        x = x + sd[f"{b}.ls2.gamma"] * y
    x = f.layer_norm(x, (width,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return x[:, 1:]
