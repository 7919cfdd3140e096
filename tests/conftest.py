"""Shared fixtures: tiny checkpoints in the hub's folder format and real photos from scikit-image."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may use the network


@pytest.fixture(scope="session", autouse=True)
def _session_ovparts_home(tmp_path_factory):
    """``$OVPARTS_HOME`` for session- and module-scoped fixtures, which run before any per-test fixture."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OVPARTS_HOME", str(tmp_path_factory.mktemp("ovparts-home-session")))
        yield


@pytest.fixture(autouse=True)
def _ovparts_home(tmp_path_factory, monkeypatch):
    """Every test gets its own ``$OVPARTS_HOME``: nothing is written to ~/.cache, no test sees another's entries."""
    home = tmp_path_factory.mktemp("ovparts-home")
    monkeypatch.setenv("OVPARTS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def openai_bpe_path():
    """OpenAI's CLIP merges file from the installed open_clip_torch wheel; missing it is a failure, not a skip."""
    from ovparts.testing import OPENAI_BPE_INSTALL, find_openai_bpe

    path = find_openai_bpe()
    if path is None:
        pytest.fail(
            "OpenAI's bpe_simple_vocab_16e6.txt.gz was not found; the real-tokenizer tests need it: run "
            f"`{OPENAI_BPE_INSTALL}` in the test environment (`make venv` does).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def clip_bpe_tokenizer_dir(tmp_path_factory, openai_bpe_path):
    """OpenAI's real CLIP BPE tokenizer (49408 tokens) as transformers' files, built offline."""
    from ovparts.testing import write_clip_bpe_tokenizer

    return write_clip_bpe_tokenizer(tmp_path_factory.mktemp("clip-bpe"), openai_bpe_path)


@pytest.fixture(scope="session", params=["tiny", "clip-bpe"])
def tokenizer_dir(request):
    """Both tokenizers the converter and text tests run with: the tiny byte-level one and OpenAI's real BPE.

    The tiny tokenizer's ids equal the test configs' defaults; the real one's (49406 / 49407) do not, which is
    what catches a config that keeps the wrong ids.
    """
    from ovparts.testing import tiny_tokenizer_folder

    if request.param == "tiny":
        return tiny_tokenizer_folder()
    return request.getfixturevalue("clip_bpe_tokenizer_dir")


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
