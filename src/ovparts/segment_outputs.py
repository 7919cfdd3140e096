"""Where ``ovparts segment`` writes, decided before the batch runs, so nothing a user owns is lost.

Each image's outputs are ``STEM.parts.png``, ``STEM.overlay.png`` and ``STEM.json``; the JSON records what
ovparts wrote (``ovparts_output``: the source image's path and SHA-256, the settings, and the SHA-256 of
each PNG). The rules:

- an output may replace only a file that this record says ovparts wrote (and that is unchanged since):
  never an input, a folder, or any other file; such a clash is refused before any work, in one sentence;
- outputs recorded for *another* source image are kept: the new image takes the next free stem
  (``x-2``), as two images of the same name in one batch already do;
- ``--skip-existing`` skips an image only when its record is complete and matches the same source
  content, model, weights, vocabulary and options, and the PNGs are the ones recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .output_files import OutputError

OUTPUT_SUFFIXES = (".parts.png", ".overlay.png", ".json")
RECORD_KEY = "ovparts_output"
RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a JSON larger than this is not one ovparts wrote


def file_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's content, read in blocks; None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def read_record(path: Path) -> dict | None:
    """The ``ovparts_output`` record of an output JSON, or None when the file is not one ovparts wrote."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_RECORD_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return None
    record = data.get(RECORD_KEY) if isinstance(data, dict) else None
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return None
    if not isinstance(record.get("source"), str) or not isinstance(record.get("files"), dict):
        return None
    return record


@dataclass
class Target:
    """One image of the batch: its output paths, its source digest, and whether to skip it."""

    image: str
    stem: str
    paths: list[Path]
    source: str
    source_sha256: str | None
    skip: bool = False


def plan_outputs(
    images: tuple[str, ...],
    out: Path,
    protected: list[Path],
    settings: dict,
    skip_existing: bool,
) -> list[Target]:
    """A target per image, or ``OutputError`` naming the first output that would overwrite something."""
    protected_ids = {_identity(path) for path in protected} - {None}
    used: set[str] = set()
    targets = []
    for image in images:
        source = str(Path(image).resolve())
        digest = file_sha256(image)
        base, n = Path(image).stem, 1
        while True:
            stem = base if n == 1 else f"{base}-{n}"
            n += 1
            if stem in used:
                continue
            paths = [out / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]
            record = ownership(paths, source, protected_ids)
            if record is not None and record["source"] != source:
                continue  # another image's results: keep them, take the next stem
            break
        used.add(stem)
        target = Target(image, stem, paths, source, digest)
        target.skip = skip_existing and record is not None and up_to_date(record, target, settings)
        targets.append(target)
    return targets


def ownership(paths: list[Path], source: str, protected: set) -> dict | None:
    """The record covering ``paths`` (None when none of them exists), or ``OutputError`` when one of them
    exists but is an input, a folder, or a file ovparts did not write."""
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    for path in existing:
        if path.is_dir():
            raise OutputError(f"The output {path} exists as a folder; move it or choose another --out.")
        if _identity(path) in protected:
            raise OutputError(f"The output {path} would overwrite an input; choose another --out folder.")
    if not existing:
        return None
    record = read_record(paths[-1])
    for path in existing:
        if path.is_symlink() or record is None or (path != paths[-1] and path.name not in record["files"]):
            raise OutputError(
                f"The output {path} exists and was not written by ovparts; move it or choose another --out."
            )
        recorded = record["files"].get(path.name)
        if path != paths[-1] and recorded is not None and file_sha256(path) != recorded:
            raise OutputError(
                f"The output {path} was changed since ovparts wrote it; move it or choose another --out."
            )
    return record


def up_to_date(record: dict, target: Target, settings: dict) -> bool:
    """Whether a complete record shows these very outputs from the same source content and settings."""
    if not record.get("complete") or record.get("source") != target.source:
        return False
    if target.source_sha256 is None or record.get("source_sha256") != target.source_sha256:
        return False
    if record.get("settings") != settings:
        return False
    for path in target.paths[:-1]:
        if not path.is_file() or file_sha256(path) != record["files"].get(path.name):
            return False
    return True


def make_record(target: Target, settings: dict, complete: bool) -> dict:
    """The record for ``target``; complete ones carry each PNG's SHA-256 (pending ones None)."""
    return {
        "version": RECORD_VERSION,
        "complete": complete,
        "source": target.source,
        "source_sha256": target.source_sha256,
        "settings": settings,
        "files": {path.name: file_sha256(path) if complete else None for path in target.paths[:-1]},
    }


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, so two spellings of one file compare equal."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
