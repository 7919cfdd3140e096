import pytest

from ovparts.data import load_dataset, write_synthetic

from .fakes import FakeSegmenter


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_eval")
    for name in ("pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood"):
        write_synthetic(name, root)
    return root


@pytest.fixture
def fake_segmenter():
    def make(name, root, corrupt=None):
        return FakeSegmenter(load_dataset(name, root), corrupt)

    return make


@pytest.fixture
def fresh_root(tmp_path):
    """A writable synthetic dataset per test, for tests that break files."""

    def make(name, **kwargs):
        return write_synthetic(name, tmp_path, **kwargs)

    return make
