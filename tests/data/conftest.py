import pytest

from ovparts.data import write_synthetic

BENCHMARKS = ("pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """All four benchmarks written once, in their official layouts (read-only for tests)."""
    root = tmp_path_factory.mktemp("synthetic")
    for name in BENCHMARKS:
        write_synthetic(name, root)
    return root


@pytest.fixture
def fresh_root(tmp_path):
    """A writable copy per test, for tests that break files."""

    def make(name, **kwargs):
        return write_synthetic(name, tmp_path, **kwargs)

    return make
