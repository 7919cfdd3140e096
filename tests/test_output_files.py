"""``ovparts.output_files``, the one place outputs are written: a write is all or nothing (a failure, an
exception or SIGTERM leaves the previous file and no temporary one), temporary files carry the name the
cleanup recognises, and every write error is one sentence."""

from __future__ import annotations

import errno
import os
import signal
import stat

import pytest
from PIL import Image

from ovparts.errors import OvpartsError
from ovparts.output_files import (
    TEMP_PATTERN,
    OutputError,
    atomic_write,
    check_output_dir,
    check_output_file,
    terminate_cleanly,
    write_png,
    write_text,
)


def one_sentence(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text and lines[0].rstrip().endswith(".")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")

    def explode(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_text_and_png_writers_replace_the_file_whole(tmp_path):
    text_path = tmp_path / "nested" / "report.json"
    write_text(text_path, "first")
    write_text(text_path, "ünïcode, second")
    assert text_path.read_bytes() == "ünïcode, second".encode()
    image = Image.new("L", (5, 3), 7)
    png_path = tmp_path / "nested" / "label.png"
    write_png(png_path, image)
    with Image.open(png_path) as written:
        assert written.format == "PNG" and written.size == (5, 3) and written.getpixel((4, 2)) == 7
    assert sorted(p.name for p in text_path.parent.iterdir()) == ["label.png", "report.json"]


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_the_option_is_named_in_the_sentence(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="--markdown") as info:
        write_text(tmp_path / "taken", "x", "--markdown")
    assert one_sentence(str(info.value))
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_sigterm_mid_write_removes_the_temp_file(tmp_path):
    target = tmp_path / "x.json"

    def write(tmp):
        tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread at the next bytecode
        for _ in range(1000):
            pass

    with pytest.raises(SystemExit) as info, terminate_cleanly():
        atomic_write(target, write)
    assert info.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == [], "the temp file (or a half output) was left behind"
    assert signal.getsignal(signal.SIGTERM) is not None


def test_temp_names_match_the_cleanup_pattern(tmp_path):
    seen = []
    atomic_write(tmp_path / "a.parts.png", lambda tmp: seen.append(tmp.name) or tmp.write_bytes(b"x"))
    assert TEMP_PATTERN.match(seen[0]), seen[0]
    assert not TEMP_PATTERN.match(".a.parts.png.abcd1234.png")  # the old, ambiguous naming is not ours


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "not writable"),
        (errno.EIO, "cannot be written"),
    ],
)
def test_write_failures_are_one_sentence(tmp_path, monkeypatch, code, words):
    def failing(_fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("ovparts.output_files.os.fsync", failing)
    with pytest.raises(OutputError) as info:
        check_output_dir(tmp_path / "out")
    assert words in str(info.value) and one_sentence(str(info.value))
    assert isinstance(info.value, OvpartsError)

    def full(tmp):
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputError):
        atomic_write(tmp_path / "x.json", full)
    assert not [p for p in tmp_path.iterdir() if p.name != "out"], "a failed write left a file"


def test_output_checks_make_no_folder(tmp_path):
    check_output_dir(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    with pytest.raises(OutputError, match="folder, not a file"):
        check_output_file(tmp_path)
