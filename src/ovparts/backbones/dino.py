"""DINO (v1) and DINOv2 image encoders as *structural guidance* for cost aggregation (PartCATSeg).

PartCATSeg replaces all of CAT-Seg's appearance and decoder guidance with one self-supervised feature map:
the final-layer, final-LayerNorm patch tokens of DINOv2 ViT-S/14 at 448 px (32 x 32 tokens), bilinearly
resized to the aggregator grid and to 2x and 4x of it (24, 48, 96 at 384 px CLIP input). DINO features
separate object parts far better than CLIP's, which is the point of the method.

Both encoders come from ``transformers`` (``Dinov2Model``, ``ViTModel`` for ``facebook/dino-*``): built from a
config dict (random weights) or read from a hub-format folder / hub id; never ``torch.hub``. The encoder is
fine-tuned at a small learning rate: :attr:`DinoGuidance.lr_multiplier` (0.01 in the recipe) tells the
training engine which factor to apply to the parameters under this module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

DINO_KINDS = ("dinov2", "dino")
# DINOv2's torch.hub model resizes its 37x37 position table with a scale factor of (grid + 0.1) / 37 rather
# than to an exact size; the published PartCATSeg weights were trained with that table.
HUB_INTERPOLATE_OFFSET = 0.1

DINOV2_SMALL: dict[str, Any] = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 518,
    "layerscale_value": 1.0,
}
DINO_VITB16: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 16,
    "image_size": 224,
    "qkv_bias": True,
}
# A DINOv2 small enough for unit tests and the "tiny" configs, with every structural feature of
# dinov2-small (layer scale, CLS, a square position table that must be interpolated to other grids).
TINY_DINOV2: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "mlp_ratio": 2,
    "patch_size": 8,
    "image_size": 32,
}


def build_dino(kind: str, config: dict[str, Any] | None = None, weights: str | None = None) -> nn.Module:
    """A ``transformers`` DINO encoder: pretrained from ``weights`` (folder or hub id), else random from ``config``.

    ``kind`` is ``"dinov2"`` (``Dinov2Model``) or ``"dino"`` (v1, ``ViTModel`` without pooler).
    """
    if kind not in DINO_KINDS:
        raise ConfigError(f"Unknown DINO kind {kind!r}; use 'dinov2' or 'dino'.")
    folder = checked_dino_folder(kind, weights) if weights is not None else None
    if kind == "dinov2":
        from transformers import Dinov2Config, Dinov2Model  # noqa: PLC0415

        if weights is not None:
            return Dinov2Model.from_pretrained(str(folder))
        return Dinov2Model(Dinov2Config(**(config or DINOV2_SMALL)))
    from transformers import ViTConfig, ViTModel  # noqa: PLC0415

    if weights is not None:
        return ViTModel.from_pretrained(str(folder), add_pooling_layer=False)
    return ViTModel(ViTConfig(**(config or DINO_VITB16)), add_pooling_layer=False)


def checked_dino_folder(kind: str, weights: str | os.PathLike) -> Path:
    """The local folder of DINO ``weights`` (a folder, or a hub id resolved through the cache or a download),
    its config.json checked with the bounds of every ovparts config and the model it describes measured on
    the ``meta`` device, before transformers builds anything from it.

    The folder, not the hub id, is what transformers then reads, so the config that was checked is the one used.
    """
    from .. import limits  # noqa: PLC0415
    from ..config_checks import check_config_tree, read_config_file  # noqa: PLC0415
    from ..hub import resolve_weights  # noqa: PLC0415

    folder = resolve_weights(weights)
    values = read_config_file(folder / "config.json", "DINO config", ConfigError)
    if not isinstance(values, dict):
        raise ConfigError(f"The DINO config {str(folder / 'config.json')!r} must be a JSON object.")
    check_config_tree(values, "dino config.json", ConfigError)
    if kind == "dinov2":
        from transformers import Dinov2Config as config_class  # noqa: PLC0415
        from transformers import Dinov2Model as model_class  # noqa: PLC0415
    else:
        from transformers import ViTConfig as config_class  # noqa: PLC0415
        from transformers import ViTModel as model_class  # noqa: PLC0415
    try:
        with torch.device("meta"):
            probe = model_class(config_class.from_dict(values))
    except Exception as err:  # noqa: BLE001 - any constructor failure is the config's fault
        raise ConfigError(
            f"The DINO config in {str(folder)!r} does not describe a buildable {kind} model "
            f"({type(err).__name__})."
        ) from None
    limits.check_model_bytes(probe, f"The DINO config in {str(folder)!r}")
    return folder


def resize_position_table(table: Tensor, grid: tuple[int, int], hub_offset: bool) -> Tensor:
    """(1, 1 + M*M, C) position table -> (1, 1 + h*w, C) for a (h, w) token grid, CLS position kept.

    ``hub_offset=True`` reproduces DINOv2's torch.hub code (bicubic with scale factor (grid + 0.1) / M),
    ``False`` resizes to the exact size as ``transformers`` does; the two differ slightly.
    """
    cls, patch = table[:, :1], table[:, 1:]
    side = int(math.isqrt(patch.shape[1]))
    if (side, side) == tuple(grid):
        return table
    dim = patch.shape[-1]
    square = patch.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    if hub_offset:
        scale = ((grid[0] + HUB_INTERPOLATE_OFFSET) / side, (grid[1] + HUB_INTERPOLATE_OFFSET) / side)
        resized = F.interpolate(square, scale_factor=scale, mode="bicubic", align_corners=False)
    else:
        resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=False)
    if tuple(resized.shape[-2:]) != tuple(grid):
        raise ConfigError(f"The position table could not be resized to {grid}.")
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(table.dtype)
    return torch.cat([cls, resized], dim=1)


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer blocks, wherever this ``transformers`` version keeps them (``encoder.layer`` or ``layers``)."""
    inner = getattr(encoder, "encoder", None)
    if inner is not None and hasattr(inner, "layer"):
        return inner.layer
    if hasattr(encoder, "layers"):
        return encoder.layers
    raise ConfigError(f"Cannot find the transformer blocks of {type(encoder).__name__}.")


class DinoGuidance(nn.Module):
    """Final-layer DINO patch tokens at several resolutions, as PartCATSeg's guidance maps.

    Parameters
    ----------
    encoder:
        A ``Dinov2Model`` or a ``ViTModel`` (DINO v1), e.g. from :func:`build_dino`.
    image_size:
        Side the (already normalised) image is bilinearly resized to before encoding (448 for ViT-S/14).
    hub_interpolation:
        Resize DINOv2's position table as the torch.hub code does (what the published weights saw).
    lr_multiplier:
        Learning-rate factor the training engine should apply to this module's parameters (recipe: 0.01).
    """

    def __init__(
        self,
        encoder: nn.Module,
        image_size: int = 448,
        hub_interpolation: bool = False,
        lr_multiplier: float = 0.01,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size = image_size
        self.hub_interpolation = hub_interpolation
        self.lr_multiplier = lr_multiplier
        self.is_v2 = type(encoder).__name__.startswith("Dinov2")

    @property
    def width(self) -> int:
        return self.encoder.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.encoder.config.patch_size

    def tokens(self, pixel_values: Tensor) -> Tensor:
        """(B, C, h, w) final-layer, final-LayerNorm patch tokens of an image already at the encoder's size."""
        enc = self.encoder
        patch = self.patch_size
        if pixel_values.shape[-2] % patch or pixel_values.shape[-1] % patch:
            raise ConfigError(
                f"The DINO input {tuple(pixel_values.shape[-2:])} must be a multiple of the patch size {patch}."
            )
        grid = (pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch)
        emb = enc.embeddings
        x = emb.patch_embeddings(pixel_values.to(emb.cls_token.dtype))
        if x.dim() == 4:  # some versions return (B, C, h, w)
            x = x.flatten(2).transpose(1, 2)
        x = torch.cat([emb.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        table = emb.position_embeddings
        x = x + resize_position_table(table, grid, self.hub_interpolation and self.is_v2)
        for layer in encoder_layers(enc):
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
        hidden = enc.layernorm(x)
        return hidden[:, 1:].transpose(1, 2).reshape(hidden.shape[0], -1, *grid)

    def forward(self, pixel_values: Tensor, sizes: Sequence[tuple[int, int]]) -> list[Tensor]:
        """Resize ``pixel_values`` (ImageNet-normalised) to ``image_size``, encode, and return one map per size.

        The same final-layer map is bilinearly resized (align_corners False) to every requested size.
        """
        side = self.image_size
        if tuple(pixel_values.shape[-2:]) != (side, side):
            pixel_values = F.interpolate(
                pixel_values, size=(side, side), mode="bilinear", align_corners=False
            )
        feats = self.tokens(pixel_values)
        return [
            feats
            if tuple(feats.shape[-2:]) == tuple(size)
            else F.interpolate(feats, size=tuple(size), mode="bilinear", align_corners=False)
            for size in sizes
        ]


__all__ = [
    "DINOV2_SMALL",
    "TINY_DINOV2",
    "DINO_KINDS",
    "DINO_VITB16",
    "DinoGuidance",
    "build_dino",
    "resize_position_table",
]
