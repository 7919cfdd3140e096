"""Hostile and odd output situations for ``ovparts segment`` (and friends): where results go, what they may
replace, what a killed run leaves behind, and options every surface must judge alike.

Each case prepares a folder and returns the CLI arguments, then states what must happen: "ok" (exit 0)
or "error" (exit 2 with one sentence), and a check on the folder afterwards (nothing of the user's lost).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

OK, ERROR = "ok", "error"
VOCAB = "cat: head, ear, tail"
TINY = ("--vocab", VOCAB, "--config", "tiny")


def photo(path: Path, colour=(120, 80, 40), size=(24, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` and its bytes (a user's files must come out unchanged)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@dataclass(frozen=True)
class OutputCase:
    name: str
    expect: str
    # prepare(tmp) -> CLI args after "segment"; may run earlier segments through ``segment`` (the callable)
    prepare: Callable[[Path, Callable], list]
    # check(tmp, before) after the run; ``before`` is snapshot(tmp) taken right before it
    check: Callable[[Path, dict], None] = field(default=lambda tmp, before: None)
    words: tuple[str, ...] = ()


def _unchanged(*names: str) -> Callable[[Path, dict], None]:
    def check(tmp: Path, before: dict) -> None:
        for name in names:
            assert (tmp / name).read_bytes() == before[name], f"{name} was changed"

    return check


def _record(path: Path) -> dict:
    return json.loads(path.read_text())["ovparts_output"]


# ------------------------------------------------------------------ output folders that cannot be written
def _out_is_file(tmp, _segment):
    (tmp / "out").write_text("not a folder")
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _out_dangling_link(tmp, _segment):
    (tmp / "out").symlink_to(tmp / "missing")
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _out_under_proc(tmp, _segment):
    return [photo(tmp / "cat.png"), *TINY, "--out", "/proc/ovparts-out"]


def _out_is_proc(tmp, _segment):
    return [photo(tmp / "cat.png"), *TINY, "--out", "/proc/self"]


def _out_through_file(tmp, _segment):
    (tmp / "plain").write_text("a file")
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "plain" / "out"]


def _out_link_loop(tmp, _segment):
    (tmp / "loop").symlink_to(tmp / "loop")
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "loop"]


# ------------------------------------------------------------------ what an output may replace
def _overwrites_input(tmp, _segment):
    photo(tmp / "d" / "cat.overlay.png", (0, 0, 255))
    return [photo(tmp / "d" / "cat.png"), tmp / "d" / "cat.overlay.png", *TINY, "--out", tmp / "d"]


def _output_is_folder(tmp, _segment):
    (tmp / "out" / "cat.json").mkdir(parents=True)
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _foreign_json(tmp, _segment):
    (tmp / "out").mkdir()
    (tmp / "out" / "cat.json").write_text('{"my": "notes"}')
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _foreign_png(tmp, _segment):
    photo(tmp / "out" / "cat.parts.png", (1, 2, 3))
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _edited_output(tmp, segment):
    args = [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]
    segment(*args)
    photo(tmp / "out" / "cat.overlay.png", (9, 9, 9))  # the user touched the result up
    return args


def _json_is_symlink(tmp, _segment):
    (tmp / "out").mkdir()
    (tmp / "notes.json").write_text("{}")
    (tmp / "out" / "cat.json").symlink_to(tmp / "notes.json")
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _foreign_json_array(tmp, _segment):
    (tmp / "out").mkdir()
    (tmp / "out" / "cat.json").write_text("[1, 2]")
    return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]


def _rerun_replaces_own(tmp, segment):
    args = [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out"]
    segment(*args)
    return args


def _check_rerun(tmp, before):
    assert _record(tmp / "out" / "cat.json")["complete"] is True


def _other_source_same_name(tmp, segment):
    segment(photo(tmp / "A" / "x.png"), *TINY, "--out", tmp / "out")
    return [photo(tmp / "B" / "x.png", (10, 240, 20)), *TINY, "--out", tmp / "out", "--skip-existing"]


def _check_other_source(tmp, before):
    for name in ("x.json", "x.parts.png", "x.overlay.png"):
        assert (tmp / "out" / name).read_bytes() == before[f"out/{name}"], f"{name} of A/x.png was lost"
    assert _record(tmp / "out" / "x-2.json")["source"] == str((tmp / "B" / "x.png").resolve())


# ------------------------------------------------------------------ --skip-existing
def _skip_same(tmp, segment):
    args = [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out", "--skip-existing"]
    segment(*args)
    return args


def _check_skipped(tmp, before):
    assert (tmp / "out" / "cat.json").read_bytes() == before["out/cat.json"], "a finished image was redone"


def _redone(tmp, before):
    assert (tmp / "out" / "cat.json").read_bytes() != before["out/cat.json"], "a stale output was skipped"
    assert _record(tmp / "out" / "cat.json")["complete"] is True


def _skip_changed_content(tmp, segment):
    args = [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out", "--skip-existing"]
    segment(*args)
    photo(tmp / "cat.png", (200, 10, 10))  # same path, new picture
    return args


def _skip_other_vocabulary(tmp, segment):
    segment(photo(tmp / "cat.png"), *TINY, "--out", tmp / "out")
    return [
        tmp / "cat.png",
        "--vocab",
        "cat: head",
        "--config",
        "tiny",
        "--out",
        tmp / "out",
        "--skip-existing",
    ]


def _skip_pending_record(tmp, segment):
    args = [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out", "--skip-existing"]
    segment(*args)
    path = tmp / "out" / "cat.json"
    record = json.loads(path.read_text())["ovparts_output"]
    record["complete"] = False  # as a run killed between its two JSON writes leaves it
    path.write_text(json.dumps({"ovparts_output": record}))
    return args


def _overlay_back(tmp, before):
    assert (tmp / "out" / "cat.overlay.png").is_file(), "an unfinished image was skipped"


def _skip_missing_png(tmp, segment):
    args = [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out", "--skip-existing"]
    segment(*args)
    (tmp / "out" / "cat.overlay.png").unlink()
    return args


# ------------------------------------------------------------------ temp files of killed runs
DEAD_PID = 2**22 + 12345  # above Linux's pid_max default: no process has it


def _stale_temps(tmp, _segment):
    out = tmp / "out"
    out.mkdir()
    (out / f".ovparts-tmp-{DEAD_PID}-cat.json.abcd1234.part").write_bytes(b"")
    (out / f".ovparts-tmp-{os.getpid()}-cat.json.zzzz9999.part").write_bytes(b"")  # a live run's
    (out / ".cat.json.abcd1234.part").write_bytes(b"mine")  # not ovparts' pattern: the user's
    (out / f".ovparts-tmp-{DEAD_PID}-dir.abcd1234.part").mkdir()  # not a regular file
    return [photo(tmp / "cat.png"), *TINY, "--out", out]


def _check_temps(tmp, before):
    names = {p.name for p in (tmp / "out").iterdir()}
    assert f".ovparts-tmp-{DEAD_PID}-cat.json.abcd1234.part" not in names
    assert {f".ovparts-tmp-{os.getpid()}-cat.json.zzzz9999.part", ".cat.json.abcd1234.part"} <= names
    assert f".ovparts-tmp-{DEAD_PID}-dir.abcd1234.part" in names


# ------------------------------------------------------------------ options judged alike everywhere
def _threshold(value: str):
    def prepare(tmp, _segment):
        return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out", "--background-threshold", value]

    return prepare


def _device(value: str):
    def prepare(tmp, _segment):
        return [photo(tmp / "cat.png"), *TINY, "--out", tmp / "out", "--device", value]

    return prepare


OUTPUT_CASES = [
    OutputCase("out-is-a-file", ERROR, _out_is_file, _unchanged("out"), ("not a folder",)),
    OutputCase("out-dangling-symlink", ERROR, _out_dangling_link, words=("symbolic link",)),
    OutputCase("out-under-proc", ERROR, _out_under_proc),
    OutputCase("out-is-proc-self", ERROR, _out_is_proc),
    OutputCase("out-through-a-file", ERROR, _out_through_file, _unchanged("plain"), ("is a file",)),
    OutputCase("out-symlink-loop", ERROR, _out_link_loop),
    OutputCase(
        "output-would-overwrite-input",
        ERROR,
        _overwrites_input,
        _unchanged("d/cat.overlay.png", "d/cat.png"),
        ("input",),
    ),
    OutputCase("output-exists-as-folder", ERROR, _output_is_folder, words=("folder",)),
    OutputCase("foreign-json", ERROR, _foreign_json, _unchanged("out/cat.json"), ("not written by ovparts",)),
    OutputCase("foreign-png", ERROR, _foreign_png, _unchanged("out/cat.parts.png"), ("not written",)),
    OutputCase("edited-output", ERROR, _edited_output, _unchanged("out/cat.overlay.png"), ("changed",)),
    OutputCase("output-json-is-symlink", ERROR, _json_is_symlink, _unchanged("notes.json")),
    OutputCase("foreign-json-array", ERROR, _foreign_json_array, _unchanged("out/cat.json")),
    OutputCase("rerun-replaces-own-outputs", OK, _rerun_replaces_own, _check_rerun),
    OutputCase("other-source-same-name", OK, _other_source_same_name, _check_other_source),
    OutputCase("skip-existing-same-source", OK, _skip_same, _check_skipped),
    OutputCase("skip-existing-changed-content", OK, _skip_changed_content, _redone),
    OutputCase("skip-existing-other-vocabulary", OK, _skip_other_vocabulary, _redone),
    OutputCase("skip-existing-pending-record", OK, _skip_pending_record, _redone),
    OutputCase("skip-existing-missing-png", OK, _skip_missing_png, _overlay_back),
    OutputCase("stale-temp-files", OK, _stale_temps, _check_temps),
    OutputCase("threshold-nan", ERROR, _threshold("nan"), words=("[0, 1]",)),
    OutputCase("threshold-negative", ERROR, _threshold("-3"), words=("[0, 1]",)),
    OutputCase("threshold-above-one", ERROR, _threshold("7"), words=("[0, 1]",)),
    OutputCase("threshold-inf", ERROR, _threshold("inf"), words=("[0, 1]",)),
    OutputCase("device-bogus", ERROR, _device("bogus"), words=("device",)),
    OutputCase("device-bad-ordinal", ERROR, _device("cuda:-7"), words=("device",)),
]

# The same values through the Python API and the HTTP server (tests/serve/test_bounds.py).
BAD_THRESHOLDS = [float("nan"), -3.0, 7.0, float("inf"), -1e-9, 1.0000001]
GOOD_THRESHOLDS = [0.0, 0.5, 1.0]
