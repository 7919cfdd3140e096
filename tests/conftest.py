"""Shared fixtures: tiny checkpoints in the hub's folder format and real photos from scikit-image."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may use the network


@pytest.fixture(scope="session")
def tiny_clipseg_dir(tmp_path_factory):
    from ovparts.testing import write_clipseg_checkpoint

    return write_clipseg_checkpoint(tmp_path_factory.mktemp("clipseg-tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_clipseg(tiny_clipseg_dir):
    import ovparts

    return ovparts.load_model("clipseg", weights=str(tiny_clipseg_dir))


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    from skimage import data

    return data.chelsea()


@pytest.fixture(scope="session")
def chelsea_path(tmp_path_factory, chelsea):
    path = tmp_path_factory.mktemp("images") / "chelsea.jpg"
    Image.fromarray(chelsea).save(path, quality=95)
    return path
