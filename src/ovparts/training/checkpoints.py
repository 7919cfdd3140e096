"""Fault tolerance: checkpoints written atomically, found again on ``--resume``.

Lightning writes checkpoints through a ``CheckpointIO`` plugin. Ours serialises to a temporary file in the
target folder and renames it over the old one (``ovparts.output_files.atomic_write``), so a run killed
mid-write leaves the previous checkpoint intact, never a truncated file. Loading uses ``weights_only=True``: a
checkpoint holds tensors, numbers and strings only, so nothing in it can execute code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import CheckpointError
from ..output_files import atomic_write

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file + ``os.replace``; ``weights_only`` loading."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None):
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"The checkpoint {str(path)!r} does not exist.")
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad checkpoint to the user
            raise CheckpointError(f"The checkpoint {str(path)!r} could not be read ({err}).") from err


def periodic_checkpoint(folder: Path, every_n_steps: int) -> ModelCheckpoint:
    """Overwrite ``folder/last.ckpt`` every ``every_n_steps`` optimiser steps and at the end of training."""
    return ModelCheckpoint(
        dirpath=folder,
        filename="last",
        every_n_train_steps=every_n_steps,
        save_top_k=0,
        save_last=True,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )


def resume_path(resume: str | bool | None, folder: Path) -> str | None:
    """``--resume`` alone continues from ``folder/last.ckpt`` (or starts fresh when none exists yet);
    ``--resume PATH`` continues from that file, which must exist."""
    if not resume:
        return None
    if resume is True or resume == "last":
        last = folder / LAST
        return str(last) if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"The checkpoint {str(path)!r} given to --resume does not exist.")
    return str(path)
