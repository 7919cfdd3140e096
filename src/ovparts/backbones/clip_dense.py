"""Dense CLIP image features the way CAT-Seg computes them, on top of ``transformers``' CLIP modules.

CLIP's last block mixes every token with the CLS token through attention, which blurs per-pixel features.
CAT-Seg (like MaskCLIP) replaces that block with a *value path*: each token's value, passed through the
output projection, plus a residual, then the block's MLP. The two published versions differ only in the
residual, and their weights depend on it:

- ``"cls"`` (CVPR 2024 version): the residual is the block input of the CLS token, broadcast to all tokens;
- ``"token"`` (old arXiv version, also PartCATSeg): the usual per-token residual.

The block input's ``ln_post`` and projection then apply to **all** tokens, giving (B, proj_dim, h, w).
Intermediate residual-stream outputs of chosen blocks (ViT-B: 3 and 7, ViT-L: 7 and 15, 0-based) are
returned as guidance maps. Runs the encoder layers itself so it does not depend on how a given
``transformers`` version wires attention masks and outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

DenseResidual = Literal["cls", "token"]
FinetuneMode = Literal["qv", "attention", "full", "none"]

# Blocks whose outputs CAT-Seg uses as guidance, by number of vision layers.
GUIDANCE_LAYERS = {12: (3, 7), 24: (7, 15)}


def default_guidance_layers(num_layers: int) -> tuple[int, ...]:
    """The official hook layers for ViT-B (12 blocks) and ViT-L (24); a third and two thirds otherwise."""
    if num_layers in GUIDANCE_LAYERS:
        return GUIDANCE_LAYERS[num_layers]
    return (max(num_layers // 3 - 1, 0), max(2 * num_layers // 3 - 1, 0))


def _split_heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def encoder_block(layer: nn.Module, x: Tensor) -> Tensor:
    """A standard pre-norm CLIP encoder layer (``CLIPEncoderLayer`` parameters), no attention mask."""
    attn = layer.self_attn
    h = attn.num_heads
    y = layer.layer_norm1(x)
    q, k, v = (_split_heads(p(y), h) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    y = F.scaled_dot_product_attention(q, k, v)
    x = x + attn.out_proj(y.transpose(1, 2).reshape(x.shape))
    return x + layer.mlp(layer.layer_norm2(x))


def dense_block(layer: nn.Module, x: Tensor, residual: DenseResidual) -> Tensor:
    """CAT-Seg's value-path replacement for the last block: no softmax, no token mixing.

    ``out = v' + MLP(LN2(v'))`` with ``v' = out_proj(v_proj(LN1(x))) + r`` and ``r = x[:, :1]`` ("cls") or
    ``r = x`` ("token").
    """
    if residual not in ("cls", "token"):
        raise ConfigError(
            f"Unknown dense residual {residual!r}; use 'cls' (CVPR version) or 'token' (old version)."
        )
    attn = layer.self_attn
    v = attn.out_proj(attn.v_proj(layer.layer_norm1(x)))
    v = v + (x[:, :1] if residual == "cls" else x)
    return v + layer.mlp(layer.layer_norm2(v))


def vision_embeddings(vision_model: nn.Module, pixel_values: Tensor) -> Tensor:
    """Patch + CLS embeddings with the position table resized (bicubic) to the input's grid, then ``ln_pre``.

    CAT-Seg runs ViT-B/16 at 384 px (24x24 tokens) with the 224 px (14x14) table; the CLS position is kept.
    """
    emb = vision_model.embeddings
    patch = emb.patch_embedding.kernel_size[0]
    h, w = pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch
    if pixel_values.shape[-2] % patch or pixel_values.shape[-1] % patch:
        raise ConfigError(
            f"The CLIP input {tuple(pixel_values.shape[-2:])} must be a multiple of the patch size {patch}."
        )
    x = emb.patch_embedding(pixel_values.to(emb.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
    cls = emb.class_embedding.reshape(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    table = emb.position_embedding.weight
    side = int(round((table.shape[0] - 1) ** 0.5))
    grid = table[1:]
    if (side, side) != (h, w):
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(h * w, -1)
    x = x + torch.cat([table[:1], grid], dim=0).unsqueeze(0)
    return vision_model.pre_layrnorm(x)


def clip_dense_features(
    vision_model: nn.Module,
    projection: nn.Module,
    pixel_values: Tensor,
    guidance_layers: Sequence[int] = (),
    residual: DenseResidual = "cls",
) -> tuple[Tensor, list[Tensor]]:
    """Dense CLIP features and intermediate guidance maps.

    Parameters
    ----------
    vision_model, projection:
        ``CLIPModel.vision_model`` and ``CLIPModel.visual_projection`` of a ``transformers`` CLIP.
    pixel_values:
        (B, 3, H, W), normalised with CLIP's mean and std; H and W multiples of the patch size.
    guidance_layers:
        0-based block indices whose outputs (residual stream, before any norm, CLS dropped) are returned.

    Returns
    -------
    dense:
        (B, projection_dim, H / patch, W / patch) after the value-path last block, ``ln_post`` and projection.
    guidance:
        One (B, width, H / patch, W / patch) map per entry of ``guidance_layers``.
    """
    layers = vision_model.encoder.layers
    bad = [i for i in guidance_layers if not 0 <= i < len(layers) - 1]
    if bad:
        raise ConfigError(
            f"Guidance layer(s) {bad} do not exist before the last of the {len(layers)} CLIP blocks."
        )
    patch = vision_model.embeddings.patch_embedding.kernel_size[0]
    h, w = pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch

    def to_map(tokens: Tensor) -> Tensor:
        return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, h, w)

    x = vision_embeddings(vision_model, pixel_values)
    wanted = {i: None for i in guidance_layers}
    for i, layer in enumerate(layers[:-1]):
        x = encoder_block(layer, x)
        if i in wanted:
            wanted[i] = to_map(x)
    x = dense_block(layers[-1], x, residual)
    x = projection(vision_model.post_layernorm(x))
    return to_map(x), [wanted[i] for i in guidance_layers]


def finetune_parameter_names(clip: nn.Module, mode: FinetuneMode) -> list[str]:
    """Names of the CLIP parameters that CAT-Seg trains in a given fine-tuning mode.

    - ``"qv"`` (CVPR ``CLIP_FINETUNE: attention``): the query and value projection *weights* of every
      attention layer of both encoders (48 tensors, 20.4M parameters for ViT-B/16); biases stay frozen
      because the official fused ``in_proj_bias`` is frozen.
    - ``"attention"`` (old version): every attention parameter of the *image* encoder plus its position
      embedding (28.5M for ViT-B/16); the text encoder stays frozen.
    - ``"full"``: everything; ``"none"``: nothing.
    """
    names = [n for n, _ in clip.named_parameters()]
    if mode == "none":
        return []
    if mode == "full":
        return names
    if mode == "qv":
        return [n for n in names if ".self_attn." in n and (".q_proj.weight" in n or ".v_proj.weight" in n)]
    if mode == "attention":
        return [
            n
            for n in names
            if n.startswith("vision_model.")
            and (".self_attn." in n or n.endswith("embeddings.position_embedding.weight"))
        ]
    raise ConfigError(
        f"Unknown CLIP fine-tuning mode {mode!r}; use one of 'qv', 'attention', 'full', 'none'."
    )


def apply_finetune(clip: nn.Module, mode: FinetuneMode) -> list[str]:
    """Set ``requires_grad`` on the CLIP parameters for a fine-tuning mode; returns the trainable names."""
    trainable = set(finetune_parameter_names(clip, mode))
    for name, param in clip.named_parameters():
        param.requires_grad_(name in trainable)
    return sorted(trainable)


def split_parameters(named: Iterable[tuple[str, nn.Parameter]], prefix: str) -> tuple[list, list]:
    """Trainable parameters under ``prefix`` and the rest (for the official 0.01 CLIP learning-rate factor)."""
    inside, outside = [], []
    for name, p in named:
        if p.requires_grad:
            (inside if name.startswith(prefix) else outside).append(p)
    return inside, outside
