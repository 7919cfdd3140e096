"""What every converter returns: the converted tensors, the config they imply, and an account of every key.

One type for all methods. :func:`settle` is the step every converter ends with: it drops the tensors the
model does not have, refuses a tensor of the wrong shape naming the official key it came from, and lists
what the model needs but the file lacks, under the names the user would look for in their file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

from ..errors import CheckpointError
from .keynames import official_names

# How a converter words its report: "itemized" lists the unused and missing keys line by line under a
# headline (the CAT-Seg family); "counts" is one line of counts (the CLIPSeg family), with the full list of
# unconverted keys as a warning.
ReportStyle = Literal["itemized", "counts"]


@dataclass
class Conversion:
    """Converted weights, the config they imply, and what did not map (official names throughout)."""

    method: str  # the registry name of the model these weights are for
    state_dict: dict[str, Tensor]
    config: dict[str, Any]
    variant: str = ""  # which official release or layout was read ("cvpr", "old", "faithful", ...)
    unconsumed: list[str] = field(default_factory=list)  # official keys not converted (unknown or unused)
    dropped: list[str] = field(default_factory=list)  # official keys left out on purpose
    missing: list[str] = field(default_factory=list)  # ovparts keys the model needs that the file lacks
    missing_official: list[str] = field(default_factory=list)  # the same, as the official file names them
    notes: list[str] = field(default_factory=list)
    headline: str = ""  # the report's first words, e.g. "CAT-Seg (cvpr version)"
    style: ReportStyle = "itemized"

    @property
    def leftover(self) -> list[str]:
        """The official keys not converted (:attr:`unconsumed`; the CAT-Seg converters' earlier name)."""
        return self.unconsumed

    def report(self) -> str:
        """What a user reads after a conversion (the command prints it)."""
        names = list(dict.fromkeys(self.missing_official or self.missing))
        if self.style == "counts":
            parts = [f"{len(self.state_dict)} tensors converted", f"{len(self.dropped)} dropped on purpose"]
            if self.unconsumed:
                parts.append(f"{len(self.unconsumed)} unconsumed ({', '.join(self.unconsumed[:3])})")
            if self.missing:
                parts.append(f"{len(self.missing)} missing ({', '.join(names[:3])})")
            return "; ".join(parts) + "."
        lines = [f"{self.headline}: {len(self.state_dict)} tensors converted."]
        if self.unconsumed:
            lines.append(
                f"{len(self.unconsumed)} official key(s) not used: {', '.join(self.unconsumed[:10])}"
            )
        if self.missing:
            lines.append(f"{len(names)} key(s) the model needs are missing: {', '.join(names[:10])}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def summary(self) -> str:
        """The report (the CLIPSeg converters' earlier name for it)."""
        return self.report()

    def warnings(self) -> list[str]:
        """Lines for stderr: the one-line report names only three unconverted keys, so all are listed here."""
        if self.style == "counts" and self.unconsumed:
            return [f"Warning: not converted: {', '.join(self.unconsumed)}"]
        return []


def settle(
    state: dict[str, Tensor],
    expected: Mapping[str, tuple[int, ...]],
    origins: Mapping[str, str],
    title: str,
) -> tuple[list[str], list[str]]:
    """Check converted tensors against the model's (``expected``) in place; returns (unused, missing).

    Tensors the model does not have are removed from ``state`` and returned under the official names they
    came from (each once); a tensor whose shape differs is refused in one sentence naming its official key.
    ``missing`` lists, sorted, the ovparts keys the model needs that ``state`` lacks.
    """
    unknown = [k for k in state if k not in expected]
    for key in unknown:
        del state[key]
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key]):
            raise CheckpointError(
                f"The tensor {origins.get(key, key)!r} has shape {tuple(tensor.shape)} (as {key}), but the "
                f"architecture read from the checkpoint needs {tuple(expected[key])}; the file is not a "
                f"consistent {title} checkpoint."
            )
    missing = sorted(k for k in expected if k not in state)
    return official_names(unknown, origins), missing
