"""The one reader of official checkpoints: detectron2 ``torch.save`` files, read without running any code.

The file is opened with the bounded reader (:func:`ovparts.hub.read_torch_file`: declared sizes checked
first, then ``torch.load(weights_only=True)``), so a checkpoint that pickles code or inflates without bound
is refused in one sentence. Training files keep the weights under ``"model"`` beside optimizer and scheduler
state, which is discarded; a bare state dict is accepted as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from torch import Tensor

from ..errors import CheckpointError
from ..hub import read_torch_file


def read_official_checkpoint(path: str | os.PathLike) -> dict[str, object]:
    """The model state dict of an official ``.pth`` (its ``"model"`` entry, or the file's dict itself)."""
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise CheckpointError(f"No checkpoint file at {text!r}: the file does not exist.")
    data = read_torch_file(text)
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        data = data["model"]
    if not isinstance(data, Mapping) or not any(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointError(
            f"{text!r} holds no 'model' dictionary of tensors: it is not a model checkpoint."
        )
    return dict(data)
