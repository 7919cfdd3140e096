"""Official checkpoints -> ovparts checkpoint folders (safetensors + config.json + tokenizer files).

One API for every method. A method's ``methods/<name>/convert.py`` declares a :class:`Converter` (its pure
state-dict mapping, default tokenizer and options) and registers it with its model; the rest is shared here:

- :func:`convert_checkpoint` ``(method, official_path, out_dir, tokenizer=None, **options) -> Conversion``:
  the whole step, as ``ovparts convert <method>`` runs it. ``method`` is a registry name (``"catseg"``,
  ``"clipseg"``, ``"partclipseg"``, ``"partcatseg"``, or any registered model with a converter) or a
  :class:`Converter`; ``tokenizer`` is a folder or hub id (the method's default when None); ``options`` go
  to the method's converter (``base_config="tiny"`` for the CLIPSeg family, ``vision_heads=`` for CAT-Seg).
  Every failure is one :class:`~ovparts.errors.CheckpointError` sentence; ``out_dir`` must not exist or be
  empty, and appears complete or not at all.
- :func:`read_official_checkpoint` (the one reader: bounded, ``weights_only``), ``Converter.convert``
  (pure: state dict in, :class:`Conversion` out) and :func:`write_checkpoint` (builds the model with the
  shape-checked loader, then saves it), for callers that want the steps apart.
- :class:`Conversion`: tensors, config, and an account of every key; ``report()`` is what the command prints.
- :func:`converter_for` / :func:`available_converters`: the converters, found through the model registry.

The rule engine the key maps are written in is :mod:`ovparts.convert.rules`; messages name keys as the
official file spells them through :mod:`ovparts.convert.keynames`; :mod:`ovparts.convert.tokenizer` is the
tokenizer step every converter shares.
"""

from __future__ import annotations

from .conversion import Conversion
from .converter import (
    Converter,
    available_converters,
    convert_checkpoint,
    converter_for,
    write_checkpoint,
)
from .reading import read_official_checkpoint

__all__ = [
    "Conversion",
    "Converter",
    "available_converters",
    "convert_checkpoint",
    "converter_for",
    "read_official_checkpoint",
    "write_checkpoint",
]
