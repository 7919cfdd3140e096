"""Text embeddings computed as the old CAT-Seg and PartCATSeg predictors compute them: OpenAI's CLIP in fp16.

Those predictors encode every class once, at construction, with the CLIP that OpenAI's loader has just cast
to half precision (linear layers, attention and projections in fp16; embedding tables and LayerNorm weights
kept in fp32, LayerNorm evaluated in fp32 and cast back), one class at a time with all its prompt templates
in one batch, token ids padded with zeros to the 77-token context, each template's embedding L2-normalised
in fp16. Their checkpoints were trained and are evaluated on exactly those embeddings, so a faithful
reproduction uses them too; ovparts' own text path (fp32) differs by fp16 rounding, which moves the
published models' logits by a few hundredths.

The layers are run with the same PyTorch modules and functions as OpenAI's code (``nn.MultiheadAttention``
with the fused input projection, ``F.layer_norm``, ``F.linear``), in the same layouts, so the arithmetic is
the same on the same device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HALF = torch.float16


def _layer_norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    """OpenAI's fp16-safe LayerNorm: evaluated in fp32 with the fp32 weights, result cast back."""
    out = F.layer_norm(x.float(), norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps)
    return out.to(x.dtype)


def _attention_module(attn: nn.Module, device: torch.device) -> nn.MultiheadAttention:
    """An ``nn.MultiheadAttention`` in fp16 holding transformers' q/k/v projections fused as OpenAI's."""
    width = attn.q_proj.weight.shape[0]
    module = nn.MultiheadAttention(width, attn.num_heads, device=device)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        module.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        module.out_proj.weight.copy_(attn.out_proj.weight)
        module.out_proj.bias.copy_(attn.out_proj.bias)
    return module.to(HALF).eval()


def _linear(x: Tensor, layer: nn.Linear) -> Tensor:
    return F.linear(x, layer.weight.to(HALF), layer.bias.to(HALF) if layer.bias is not None else None)


def openai_token_ids(tokenizer, prompts: Sequence[str], context: int) -> Tensor:
    """(N, context) ids as OpenAI's ``clip.tokenize``: start, BPE, end, then zeros (not the pad id)."""
    encoded = tokenizer(
        list(prompts), padding="max_length", truncation=True, max_length=context, return_tensors="pt"
    )
    return encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, 0)


@torch.no_grad()
def encode_openai_fp16(clip, tokenizer, texts: Sequence[str], templates: Sequence[str]) -> Tensor:
    """(T, P, D) float32 embeddings of ``texts`` x ``templates``, L2-normalised per template in fp16.

    ``clip`` is a ``transformers`` ``CLIPModel`` (fp32 weights, as converted); nothing in it is modified.
    """
    text_model = clip.text_model
    device = clip.text_projection.weight.device
    context = text_model.embeddings.position_embedding.weight.shape[0]
    layers = text_model.encoder.layers
    attention = [_attention_module(layer.self_attn, device) for layer in layers]
    mask = torch.full((context, context), float("-inf"), device=device).triu_(1).to(HALF)
    token_table = text_model.embeddings.token_embedding.weight
    positions = text_model.embeddings.position_embedding.weight.to(HALF)
    projection = clip.text_projection.weight.t().to(HALF).contiguous()  # OpenAI's (width, D) layout
    out = []
    for text in texts:
        ids = openai_token_ids(tokenizer, [t.format(text) for t in templates], context).to(device)
        x = token_table[ids].to(HALF) + positions
        x = x.permute(1, 0, 2)  # (L, N, D), OpenAI's layout
        for layer, attn in zip(layers, attention, strict=True):
            y = _layer_norm(x, layer.layer_norm1)
            x = x + attn(y, y, y, need_weights=False, attn_mask=mask)[0]
            y = _linear(_layer_norm(x, layer.layer_norm2), layer.mlp.fc1)
            x = x + _linear(y * torch.sigmoid(1.702 * y), layer.mlp.fc2)
        x = _layer_norm(x.permute(1, 0, 2), text_model.final_layer_norm)
        pooled = x[torch.arange(x.shape[0], device=device), ids.argmax(dim=-1)] @ projection
        pooled = pooled / pooled.norm(dim=-1, keepdim=True)
        out.append(pooled)
    return torch.stack(out).float()


TEXT_PRECISIONS = ("fp32", "openai_fp16")


def check_text_precision(value: str) -> None:
    from ..errors import ConfigError  # noqa: PLC0415

    if value not in TEXT_PRECISIONS:
        raise ConfigError(f"Unknown text precision {value!r}; use 'fp32' or 'openai_fp16'.")
