"""``ovparts data download NAME --root DIR``: fetch a benchmark's archive, verify it, unpack it, check it.

Sources are those the official READMEs give (Google Drive for Pascal-Part-116 and ADE20K-Part-234, the
Hugging Face hub for PartImageNet). The archive goes to ``$OVPARTS_HOME/downloads/data/NAME/`` (resumable;
its SHA-256 recorded at the first download and checked before every unpacking), is unpacked into a temporary
folder inside ``--root`` with every member checked (:mod:`.archives`), and renamed to ``ROOT/<dataset
folder>`` only when complete. A dataset already in place that passes ``ovparts data check`` is left as it is,
so a second run does nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError
from ..home import ovparts_home
from ..weights import download as transport
from ..weights.catalog import Source
from .archives import extract
from .registry import READERS, CheckResult, canonical_name, check_dataset


@dataclass(frozen=True)
class DatasetSource:
    """One benchmark's archive: where it is, what it unpacks to, and any step a person must take."""

    name: str
    source: Source
    sha256: str | None = None
    manual: str | None = None  # printed before anything is fetched when set


SOURCES: dict[str, DatasetSource] = {
    "pascal_part_116": DatasetSource(
        "pascal_part_116", Source("gdrive", "1QF0BglrcC0teKqx15vP8qJNakGgCWaEH", "PascalPart116.tar.gz")
    ),
    "ade20k_part_234": DatasetSource(
        "ade20k_part_234", Source("gdrive", "1EBVPW_tqzBOQ_DC6yLcouyxR7WrctRKi", "ADE20KPart234.tar.gz")
    ),
    "partimagenet": DatasetSource(
        "partimagenet",
        Source("hub", "turkeyju/PartImageNet", "PartImageNet_Seg.zip", repo_type="dataset"),
    ),
    "partimagenet_ood": DatasetSource(
        "partimagenet_ood",
        Source("hub", "turkeyju/PartImageNet", "PartImageNet_OOD.zip", repo_type="dataset"),
    ),
}


def archive_path(entry: DatasetSource) -> Path:
    return ovparts_home() / "downloads" / "data" / entry.name / entry.source.filename


def download_dataset(
    name: str, root: str | os.PathLike, keep_archive: bool = True, log: Callable[[str], None] = print
) -> CheckResult:
    """Make ``ROOT/<dataset folder>`` hold benchmark ``name``; returns ``ovparts data check``'s result."""
    key = canonical_name(name)
    entry = SOURCES.get(key)
    if entry is None:
        raise DatasetError(f"{key} has no direct download; see `ovparts data info {key}`.")
    root = Path(root)
    dirname = READERS[key].dirname
    target = root / dirname
    if target.is_dir():
        result = check_dataset(key, root)
        if result.ok:
            log(f"{target} is already in place; nothing to do.")
            return result
        raise DatasetError(
            f"{target} exists but fails `ovparts data check` ({(result.missing + result.bad_files)[0]}); move "
            "it away and run again."
        )
    if entry.manual:
        log(entry.manual)
    archive = _fetch_archive(entry)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dirname}.", suffix=".partial", dir=root))
    try:
        log(f"Unpacking {archive.name} ...")
        extract(archive, staging)
        os.replace(_content_folder(staging, dirname), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for junk in target.rglob("._*"):  # macOS resource forks the README deletes by hand
        if junk.is_file():
            junk.unlink()
    if not keep_archive:
        shutil.rmtree(archive.parent, ignore_errors=True)
    return check_dataset(key, root)


def _fetch_archive(entry: DatasetSource) -> Path:
    archive = archive_path(entry)
    record = archive.with_name(archive.name + ".sha256")
    if not archive.is_file():
        if transport.offline():
            raise DatasetError(
                f"{entry.source.filename} is not downloaded and downloads are off (HF_HUB_OFFLINE / "
                f"OVPARTS_OFFLINE); fetch {entry.source.url} and put it at {archive}, then run again."
            )
        archive.parent.mkdir(parents=True, exist_ok=True)
        transport.fetch(entry.source, archive)
    digest = transport.file_sha256(archive)
    if entry.sha256 and digest != entry.sha256:
        raise DatasetError(
            f"{archive} has SHA-256 {digest[:16]}..., not the published {entry.sha256[:16]}..."
        )
    if record.is_file():
        expected = (record.read_text().split() or [""])[0]
        if expected and expected != digest:
            raise DatasetError(
                f"{archive} changed since its first download (SHA-256 {digest[:16]}..., recorded "
                f"{expected[:16]}...); delete it and run again."
            )
    else:
        record.write_text(f"{digest}  {archive.name}\n")
    return archive


def _content_folder(staging: Path, dirname: str) -> Path:
    """The unpacked dataset folder: ``staging/dirname``, the single folder the archive holds, or staging."""
    entries = [p for p in staging.iterdir() if not p.name.startswith("._")]
    if (staging / dirname).is_dir() and len(entries) == 1:
        return staging / dirname
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    inner = staging / dirname
    inner.mkdir()
    for path in entries:
        if path != inner:
            shutil.move(str(path), inner / path.name)
    return inner
