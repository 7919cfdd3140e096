"""Two CPU processes over gloo give the single-process report bit for bit: every benchmark, protocol, rule."""

import json
import os
import sys
from pathlib import Path

import pytest

import ovparts
from ovparts.data import load_dataset, write_synthetic
from ovparts.errors import DatasetError

from ..processes import run_ranks
from .fakes import SlowShifted

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # worker.py imports fakes as a top-level module, as it does as a script
from .worker import matrix_entries  # noqa: E402

SRC = HERE.parents[1] / "src"
BENCHMARKS = ("pascal_part_116", "ade20k_part_234", "partimagenet", "partimagenet_ood")


def _env():
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Four small benchmarks; Pascal with an unreadable image and a broken label file (skips to merge)."""
    root = tmp_path_factory.mktemp("ddp")
    for name in BENCHMARKS:
        write_synthetic(name, root, images_per_split=5)
    pascal = root / "PascalPart116"
    (sorted((pascal / "images" / "val").iterdir())[1]).write_bytes(b"not a jpeg")
    (sorted((pascal / "annotations_detectron2_part" / "val").iterdir())[3]).write_bytes(b"not a png")
    return root


@pytest.mark.slow
def test_two_processes_equal_one_for_every_benchmark_protocol_and_rule(root, tmp_path):
    out = tmp_path / "ddp.json"
    command = [sys.executable, str(HERE / "worker.py"), str(root), ",".join(BENCHMARKS), str(out)]
    done = run_ranks([*command, "--matrix", "--devices", "2", "--workers", "1"], _env(), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads(Path(f"{out}.rank{r}").read_text()) for r in (0, 1)]
    single = json.loads(json.dumps(matrix_entries(root, BENCHMARKS, 1, 0)))
    assert len(single) == 4 * 3 * 4
    for key, expected in single.items():
        assert ranks[0][key] == expected, key
        assert ranks[1][key] == expected, key
    pascal = single["pascal_part_116/oracle_obj/ovparts"]["dict"]
    assert pascal["counts"]["errors"] == 2 and len(pascal["skipped"]) == 2  # both broken files, in order
    assert 0 < pascal["metrics"]["mIoU"] < 100


@pytest.mark.slow
def test_strict_two_processes_fail_like_one(root, tmp_path):
    reader = load_dataset("pascal_part_116", root)
    with pytest.raises(DatasetError) as single:
        ovparts.evaluate(SlowShifted(reader), reader, strict=True, progress=False)
    out = tmp_path / "strict.json"
    command = [sys.executable, str(HERE / "worker.py"), str(root), "pascal_part_116", str(out)]
    done = run_ranks([*command, "--strict", "--devices", "2", "--workers", "0"], _env(), timeout=600)
    assert done.returncode != 0 and not out.exists()
    assert str(single.value) in done.stderr


@pytest.mark.slow
def test_an_unguarded_script_gets_one_sentence_not_a_nested_run(root, tmp_path):
    """Loader workers start from a forkserver, which imports the main script again: a script that
    evaluates at its top level is told to use a main guard instead of starting a run in every worker."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import ovparts\n"
        "from fakes import SlowShifted\n"
        "from ovparts.data import load_dataset\n"
        f"reader = load_dataset('partimagenet', {str(root)!r})\n"
        "ovparts.evaluate(SlowShifted(reader), reader, progress=False, devices=2, accelerator='cpu',"
        " num_workers=1)\n"
    )
    done = run_ranks([sys.executable, str(script)], _env(), timeout=300)
    assert done.returncode != 0
    assert "was started while a loader worker imported your script again" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
