"""Where ovparts keeps what it downloads and computes for reuse: ``$OVPARTS_HOME``, default
``~/.cache/ovparts`` (``$XDG_CACHE_HOME/ovparts`` when that is set).

One root for the converted published weights (``weights/``), their raw downloads (``downloads/``) and the
text embeddings of encoded vocabularies (``text/``), so that ``rm -r`` of one folder resets everything.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "OVPARTS_HOME"


def ovparts_home() -> Path:
    """The cache root, read from the environment at each call (tests and servers may change it)."""
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ovparts"


def home_subdir(name: str) -> Path:
    """``$OVPARTS_HOME/name``, created on first use."""
    folder = ovparts_home() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
