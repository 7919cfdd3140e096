"""Which parameters a recipe trains ("scope"), as name rules written as data.

Each paper freezes most of its pretrained encoders and says so in code, not prose; the presets below copy
those rules so a recipe names a scope instead of re-listing parameter names. A scope is either

* ``"model"``: keep what the model decided itself (CAT-Seg's ``finetune`` option, PartCLIPSeg's
  ``trainable_parameters()``), so a method that knows its own recipe needs nothing here;
* ``"all"``: train everything;
* a preset name from ``SCOPE_PRESETS``;
* a list of name substrings: a parameter trains iff its name contains one of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from ..errors import ConfigError

SCOPE_PRESETS: dict[str, tuple[str, ...]] = {
    # OV-PARTS / PartCLIPSeg (official: part-clipseg's trainable-parameter filter): visual adapter, CLIP text token + position embeddings,
    # FiLM and the decoder. The background vector, the CLIP blocks and the text adapter stay frozen.
    "va+l+f+d": ("visual_adapter", "clip.text_model.embeddings", "film", "decoder"),
    # Original CLIPSeg: the decoder only (FiLM lives inside it here).
    "decoder": ("decoder",),
}


def scope_patterns(scope: str | Iterable[str]) -> tuple[str, ...] | None:
    """Name substrings for a scope; None for ``"model"`` (the model's own choice) and ``()`` for ``"all"``."""
    if isinstance(scope, str):
        key = scope.lower()
        if key == "model":
            return None
        if key == "all":
            return ()
        if key in SCOPE_PRESETS:
            return SCOPE_PRESETS[key]
        raise ConfigError(
            f"Unknown trainable scope {scope!r}; use model, all, {', '.join(SCOPE_PRESETS)} or a list of names."
        )
    patterns = tuple(str(p) for p in scope)
    if not patterns:
        raise ConfigError("A trainable scope given as a list needs at least one name substring.")
    return patterns


def apply_scope(model: nn.Module, scope: str | Iterable[str]) -> list[str]:
    """Set ``requires_grad`` by the scope; returns the names of the trainable parameters."""
    patterns = scope_patterns(scope)
    if patterns is None:
        chosen = getattr(model, "trainable_parameters", None)
        if callable(chosen):
            keep = {id(p) for p in chosen()}
            for parameter in model.parameters():
                parameter.requires_grad_(id(parameter) in keep)
    else:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(not patterns or any(p in name for p in patterns))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError(
            f"The trainable scope {scope!r} selects no parameter of this {type(model).__name__}."
        )
    return trainable
