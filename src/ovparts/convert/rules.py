"""The key-rule engine the converters share: official tensor names -> ovparts names, as data.

A rule is ``(official regex, ovparts template, operation)``; the first rule whose regex matches an official
key (full match) decides. Operations:

- ``copy``: the tensor as it is;
- ``transpose``: OpenAI stores ``x @ W`` projections, transformers stores ``Linear`` weights (``W.T``);
- ``flatten``: official ``(1, 1, C)`` parameters that ovparts holds as ``(C,)``;
- ``split_qkv``: fused q/k/v along dim 0, written to the template's ``{qkv}`` slot as ``q``, ``k``, ``v``;
- ``check_swin_mask``: a buffer ovparts recomputes; nothing is written (the converter verifies it).

:mod:`ovparts.convert.keynames` reads the same rules backwards to name keys as the official file spells them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor

from ..errors import CheckpointError

# (official regex, ovparts template, operation)
Rule = tuple[str, str, str]


def apply_rules(
    key: str, value: Tensor, rules: tuple[Rule, ...], prefix: str
) -> list[tuple[str, Tensor]] | None:
    """Map one official tensor through the first matching rule; None if no rule matches."""
    for pattern, template, op in rules:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        if op == "check_swin_mask":
            return []
        target = prefix + m.expand(template) if template else ""
        if op == "copy":
            return [(target, value)]
        if op == "transpose":
            return [(target, value.t())]
        if op == "flatten":
            return [(target, value.reshape(-1))]
        if op == "split_qkv":
            if value.shape[0] % 3:
                raise CheckpointError(
                    f"{key} has shape {tuple(value.shape)}, which cannot be split into q, k, v."
                )
            return [
                (target.replace("{qkv}", n), t) for n, t in zip("qkv", value.chunk(3, dim=0), strict=True)
            ]
        raise AssertionError(f"unknown operation {op}")
    return None


def map_state_dict(
    official: Mapping[str, object],
    map_key: Callable[[str, Tensor], list[tuple[str, Tensor]] | None],
    origins: dict[str, str] | None = None,
) -> tuple[dict[str, Tensor], list[str]]:
    """Apply ``map_key`` to every tensor (as float32 when floating); keys it returns None for are leftovers.

    ``origins``, when given, is filled with ovparts name -> the official name it came from, so that messages
    about converted tensors can name the key the user finds in their file. Non-tensor entries are leftovers.
    """
    out: dict[str, Tensor] = {}
    leftover: list[str] = []
    for key, value in official.items():
        if not isinstance(value, Tensor):
            leftover.append(key)
            continue
        value = value.detach().to(torch.float32) if value.is_floating_point() else value.detach()
        mapped = map_key(key, value)
        if mapped is None:
            leftover.append(key)
            continue
        for target, tensor in mapped:
            out[target] = tensor.contiguous()
            if origins is not None:
                origins[target] = key
    return out, leftover


def count_indices(keys: Iterable[str], pattern: str) -> int:
    """How many numbered blocks the keys hold: one more than the largest index ``pattern``'s group 1 reads."""
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def tensor_shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    """The shape of ``sd[key]``; a missing key is refused naming it as the user's file spells it."""
    if key not in sd:
        full = getattr(sd, "prefix", "") + key
        raise CheckpointError(
            f"The checkpoint lacks {full}, from which the converter reads the architecture."
        )
    return tuple(sd[key].shape)


class SubDict(dict):
    """The official tensors under one prefix, named without it; keeps the prefix so that messages can give
    the full name the user finds in their file."""

    prefix: str = ""


def sub_dict(sd: Mapping[str, Tensor], prefix: str) -> SubDict:
    """The entries of ``sd`` under ``prefix``, with the prefix cut off (and remembered, for messages)."""
    out = SubDict((k[len(prefix) :], v) for k, v in sd.items() if k.startswith(prefix))
    out.prefix = prefix
    return out
