"""OpenAI CLIP as the official repositories load it (``third_party/clip.py``), without the network.

``clip.load(name, jit=False)`` downloads OpenAI's TorchScript archive, reads its ``state_dict()`` and builds
the model with the repository's own ``build_model``. The harness answers ``torch.jit.load`` with a seeded
state dict in the archive's layout, so the official ``build_model`` runs unchanged on reduced widths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from . import fixtures


def archive_state(
    clip_cls: type, sizes: dict, gen: torch.Generator, tokens: torch.Tensor
) -> dict[str, torch.Tensor]:
    """A seeded CLIP in the layout of OpenAI's archive (fused ``in_proj_weight``, the three int entries).

    The token-embedding table keeps OpenAI's 49408 rows; only the rows of the token ids the official
    tokenizer produced for this case are non-zero, so the stored checkpoint compresses well.
    """
    model = clip_cls(**sizes)
    state = fixtures.randomize(model.state_dict(), gen, fixtures.norm_modules(model))
    # fp16-exact values: the archive and the stored checkpoint then hold the same CLIP (text features
    # computed at construction from the archive match the checkpoint's text tower)
    state = fixtures.as_float32(fixtures.fp16_rounded(state))
    table = state["token_embedding.weight"]
    used = torch.zeros(table.shape[0], dtype=torch.bool)
    used[tokens.unique()] = True
    state["token_embedding.weight"] = torch.where(used[:, None], table, torch.zeros(()))
    fused: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("attn.q_proj_weight"):
            stem = key[: -len("q_proj_weight")]
            fused[stem + "in_proj_weight"] = torch.cat(
                [state[stem + f"{x}_proj_weight"] for x in "qkv"], dim=0
            )
        elif not key.endswith(("attn.k_proj_weight", "attn.v_proj_weight")):
            fused[key] = value
    fused["input_resolution"] = torch.tensor(sizes["image_resolution"])
    fused["context_length"] = torch.tensor(sizes["context_length"])
    fused["vocab_size"] = torch.tensor(sizes["vocab_size"])
    return fused


class _Archive:
    """What ``torch.jit.load`` returns for OpenAI's archive, as far as ``clip.load(jit=False)`` uses it."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self._state = state
        self.input_resolution = state["input_resolution"]

    def eval(self) -> _Archive:
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self._state.items()}


@contextlib.contextmanager
def offline_clip(
    clip_module, state: dict[str, torch.Tensor], fp32_text: bool = False, builder=None
) -> Iterator[None]:
    """``clip.load`` without the network: the archive is ``state``; the torchvision transform is a no-op.

    ``fp32_text`` (a diagnostic, never for committed fixtures): ``builder.convert_weights`` (the official
    ``model_vpt``) becomes a no-op, so text features computed at construction come from an fp32 CLIP
    instead of the fp16 one the official code computes them with.
    """
    names = ("_download", "Compose", "Resize", "CenterCrop", "ToTensor", "Normalize")
    saved = {name: getattr(clip_module, name) for name in names}
    jit_load = torch.jit.load
    convert = getattr(builder, "convert_weights", None)
    clip_module._download = lambda url, root=None: "offline-openai-clip-archive"
    for name in names[1:]:
        setattr(clip_module, name, lambda *args, **kwargs: None)
    torch.jit.load = lambda path, map_location=None: _Archive(state)
    if fp32_text:
        builder.convert_weights = lambda model: None
    try:
        yield
    finally:
        torch.jit.load = jit_load
        for name, value in saved.items():
            setattr(clip_module, name, value)
        if fp32_text:
            builder.convert_weights = convert


def text_precision_note(fp32_text: bool) -> str:
    if fp32_text:
        return "DIAGNOSTIC: text features at construction computed by an fp32 CLIP (not the official run)"
    return "as the official code: computed by its fp16 CLIP (convert_weights) where it computes them"


@contextlib.contextmanager
def cpu_only() -> Iterator[None]:
    """``Tensor.cuda()`` returns the tensor itself (the official predictor calls it on token ids)."""
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda


def official_tokens(clip_module, templates: list[str], names: list[str]) -> torch.Tensor:
    return torch.cat([clip_module.tokenize([t.format(n) for t in templates]) for n in names])
