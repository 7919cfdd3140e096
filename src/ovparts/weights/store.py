"""Published checkpoints in the user cache: fetched once, verified, converted once, then loaded offline.

Layout under ``$OVPARTS_HOME`` (default ``~/.cache/ovparts``):

- ``downloads/METHOD/NAME/FILE``: the raw official file, and ``FILE.sha256``, its SHA-256 recorded at the
  first download (or the first time a hand-placed file was used). Every later use of the raw file checks it:
  a file changed on disk is refused, never converted.
- ``weights/METHOD/NAME/``: the converted ovparts folder (``model.safetensors``, ``config.json``, tokenizer)
  and ``ovparts_weights.json`` (the entry, the raw file's hash). It is written in a temporary folder and
  renamed into place, so it exists complete or not at all.
- ``locks/METHOD+NAME.lock``: two processes pulling one name at once take turns; the second finds the
  folder the first made.

Once the converted folder exists, loading it touches no network and no raw file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..errors import CheckpointError, OvpartsError, WeightsNotFoundError
from ..home import ovparts_home
from . import download
from .catalog import PublishedWeights, lookup, require
from .convert_step import convert_published

MARKER = "ovparts_weights.json"


def converted_dir(entry: PublishedWeights) -> Path:
    return ovparts_home() / "weights" / entry.method / entry.name


def raw_path(entry: PublishedWeights) -> Path:
    return ovparts_home() / "downloads" / entry.method / entry.name / entry.source.filename


def _record_path(raw: Path) -> Path:
    return raw.with_name(raw.name + ".sha256")


def _lock(entry: PublishedWeights):  # noqa: ANN202 - a filelock.FileLock
    from filelock import FileLock

    folder = ovparts_home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"{entry.method}+{entry.name}.lock"))


def cached_path(entry: PublishedWeights) -> Path | None:
    """The converted folder when it is complete, else None (no network, no lock)."""
    folder = converted_dir(entry)
    if (folder / MARKER).is_file() and (folder / "config.json").is_file():
        return folder
    return None


def resolve_name(method: str, weights: str | os.PathLike) -> str | os.PathLike:
    """``weights`` as ``load_model`` should read it: an existing path as is, a published name as its folder.

    Anything else (a hub id, a missing folder) is returned unchanged for the hub resolver's own message.
    """
    if not isinstance(weights, str) or Path(weights).expanduser().exists():
        return weights
    entry = lookup(weights, method)
    if entry is None:
        return weights
    return str(ensure(entry))


def ensure(entry: PublishedWeights, force: bool = False) -> Path:
    """The loadable folder (or hub id for native entries) of ``entry``: from the cache, or fetched and converted.

    ``force``: convert again from the raw file (it is still verified against its recorded hash).
    """
    if entry.unsupported:
        raise CheckpointError(f"{entry.qualified} cannot be used: {entry.unsupported}.")
    if entry.native:
        from ..hub import resolve_weights

        return resolve_weights(entry.source.location, revision=entry.source.revision)
    if not force and (found := cached_path(entry)) is not None:
        return found
    if download.offline() and not raw_path(entry).is_file():
        raise WeightsNotFoundError(_offline_sentence(entry, raw_path(entry)))
    with _lock(entry):
        if not force and (found := cached_path(entry)) is not None:
            return found  # another process finished it while this one waited
        tokenizer = _tokenizer_folder(entry)  # small, so first: no large download when it cannot be had
        raw, fresh, digest = _raw_file(entry)
        try:
            return _convert_into_cache(entry, raw, digest, tokenizer)
        except OvpartsError as err:
            if fresh:  # a file this call downloaded that does not convert is not kept
                raw.unlink(missing_ok=True)
                _record_path(raw).unlink(missing_ok=True)
                raise CheckpointError(
                    f"The downloaded {entry.source.filename} for {entry.qualified} could not be converted "
                    f"({str(err).rstrip('.')}); it was removed: run again to download it anew."
                ) from None
            raise


def _raw_file(entry: PublishedWeights) -> tuple[Path, bool, str]:
    """The verified raw file, whether this call downloaded it, and its SHA-256."""
    raw = raw_path(entry)
    fresh = False
    if not raw.is_file():
        if download.offline():
            raise WeightsNotFoundError(_offline_sentence(entry, raw))
        raw.parent.mkdir(parents=True, exist_ok=True)
        download.fetch(entry.source, raw)
        fresh = True
    digest = download.file_sha256(raw)
    record = _record_path(raw)
    if entry.sha256 and digest != entry.sha256.lower():
        if fresh:
            raw.unlink(missing_ok=True)
        raise CheckpointError(
            f"{raw} has SHA-256 {digest[:16]}..., not the published {entry.sha256[:16]}...; "
            + ("the download was removed, run again." if fresh else "delete it and run again.")
        )
    if record.is_file():
        expected = record.read_text().split()[0] if record.read_text().strip() else ""
        if expected and digest != expected:
            raise CheckpointError(
                f"{raw} changed since its first download (SHA-256 {digest[:16]}..., recorded "
                f"{expected[:16]}...); remove it with `ovparts weights rm {entry.qualified}` and pull again."
            )
    else:
        from ..output_files import atomic_write

        atomic_write(record, lambda tmp: tmp.write_text(f"{digest}  {raw.name}\n"))
    return raw, fresh, digest


def _tokenizer_folder(entry: PublishedWeights) -> str:
    """The tokenizer files the converted folder will carry, fetched from the hub like any hub file."""
    from ..convert.tokenizer import resolve_tokenizer_folder

    try:
        return resolve_tokenizer_folder(entry.tokenizer)
    except CheckpointError:
        where = "downloads are off (HF_HUB_OFFLINE)" if download.offline() else "it could not be downloaded"
        raise WeightsNotFoundError(
            f"{entry.qualified} needs the tokenizer {entry.tokenizer}, which is not in the Hugging Face cache and "
            f"{where}; run `huggingface-cli download {entry.tokenizer} --include '*.json' '*.txt'` on a machine "
            "with internet and copy its cache folder (HF_HOME) here, then run again."
        ) from None


def _offline_sentence(entry: PublishedWeights, raw: Path) -> str:
    return (
        f"{entry.qualified} is not in the cache and downloads are off (HF_HUB_OFFLINE / OVPARTS_OFFLINE); "
        f"fetch {entry.source.url} ({entry.source.filename}) on a machine with internet and put it at {raw}, "
        "then run again."
    )


def _convert_into_cache(entry: PublishedWeights, raw: Path, digest: str, tokenizer: str) -> Path:
    final = converted_dir(entry)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".partial", dir=final.parent))
    try:
        out = staging / "folder"
        convert_published(entry, raw, out, tokenizer)
        marker = {
            "entry": {**asdict(entry), "source": asdict(entry.source)},
            "raw_file": raw.name,
            "raw_sha256": digest,
        }
        (out / MARKER).write_text(json.dumps(marker, indent=2, ensure_ascii=False))
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def remove(entry: PublishedWeights) -> list[Path]:
    """Delete the converted folder and the raw download of ``entry``; returns what was removed."""
    removed = []
    with _lock(entry):
        for path in (converted_dir(entry), raw_path(entry).parent):
            if path.exists():
                shutil.rmtree(path)
                removed.append(path)
    return removed


def status(entry: PublishedWeights) -> str:
    """``converted``, ``downloaded`` (raw only), ``-`` (nothing local) or ``unsupported``."""
    if entry.unsupported:
        return "unsupported"
    if entry.native:
        return "hub"
    if cached_path(entry) is not None:
        return "converted"
    return "downloaded" if raw_path(entry).is_file() else "-"


__all__ = [
    "cached_path",
    "converted_dir",
    "ensure",
    "raw_path",
    "remove",
    "require",
    "resolve_name",
    "status",
]
