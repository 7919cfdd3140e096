"""Loading committed official fixtures and comparing ovparts' outputs with them (shared by the parity tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
ATOL = 1e-4


@dataclass
class OfficialCase:
    """One committed case: what was run (``info``), the checkpoint path and the official outputs."""

    name: str
    info: dict
    checkpoint: Path
    outputs: dict[str, torch.Tensor]

    @classmethod
    def load(cls, name: str) -> OfficialCase:
        folder = FIXTURES / name
        if not (folder / "case.json").is_file():
            raise FileNotFoundError(f"The parity fixture {folder} is missing; see docs/parity.md.")
        info = json.loads((folder / "case.json").read_text())
        return cls(name, info, folder / "official.pth", load_file(str(folder / "outputs.safetensors")))


def max_diff(ours: torch.Tensor | np.ndarray, official: torch.Tensor) -> float:
    ours = torch.as_tensor(np.asarray(ours) if not isinstance(ours, torch.Tensor) else ours).float()
    assert tuple(ours.shape) == tuple(official.shape), f"shape {tuple(ours.shape)} vs {tuple(official.shape)}"
    return float((ours - official.float()).abs().max())


def assert_close(ours, official: torch.Tensor, what: str, atol: float = ATOL) -> None:
    diff = max_diff(ours, official)
    assert diff <= atol, f"{what}: max abs difference {diff:.3g} from the official output (allowed {atol:g})"


def assert_same_labels(
    ours: np.ndarray,
    official: torch.Tensor,
    what: str,
    ties: torch.Tensor | None = None,
    where: np.ndarray | None = None,
) -> None:
    """Identical labels, except where the official scores tie at float precision (``ties``, from the fixture:
    the two best official scores within 1e-6, where either label is the official answer up to rounding), on
    the pixels ``where`` is true (all by default: e.g. Oracle-Obj's object mask)."""
    ours = np.asarray(ours)
    theirs = official.numpy().astype(np.int64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs {theirs.shape}"
    exempt = np.zeros(theirs.shape, dtype=bool) if ties is None else ties.numpy().astype(bool)
    assert exempt.mean() < 0.01, f"{what}: {100 * exempt.mean():.2f}% tied pixels; the fixture is degenerate"
    where = np.ones(ours.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
    assert where.any(), f"{what}: no pixel to compare"
    differ = float(((ours != theirs) & ~exempt)[where].mean())
    assert differ == 0.0, f"{what}: {100 * differ:.2f}% of the pixels get another label than the official one"


def strided(case: OfficialCase, tensor: torch.Tensor) -> torch.Tensor:
    """The pixels a fixture stores: every ``stride``-th row and column (case.json says which)."""
    step = case.info["stride"]
    return tensor[..., ::step, ::step]


def convert_clipseg_family(case: OfficialCase, method: str, base: str, tokenizer: Path, out: Path) -> Path:
    """The official checkpoint converted as a user would, through ``ovparts.methods.<method>.convert``; the base
    config supplies what shapes cannot tell (attention heads, which CLIP layers feed the decoder), here the
    reduced fixture's layers."""
    import importlib

    converter = importlib.import_module(f"ovparts.methods.{method}.convert")
    configs = importlib.import_module(f"ovparts.methods.{method}.config").CONFIGS
    config = {**configs[base], "extract_layers": case.info["architecture"]["extract_layers"]}
    conversion = converter.convert_state_dict(converter.read_official_checkpoint(case.checkpoint), config)
    assert not conversion.unconsumed and not conversion.missing, conversion.summary()
    return converter.write_checkpoint(conversion, out, tokenizer)
