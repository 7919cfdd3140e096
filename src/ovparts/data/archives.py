"""Unpacking a downloaded dataset archive without trusting it.

Every member is checked before anything is written: a path that is absolute or climbs out with ``..``, a link
(symbolic or hard), a device or FIFO, more members or more bytes than ``OVPARTS_MAX_ARCHIVE_BYTES`` /
``OVPARTS_MAX_ARCHIVE_MEMBERS`` allow, or (zip) a member that inflates more than 200-fold, refuses the
whole archive with one sentence. Only then are regular files and folders written, under the target folder.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import DatasetError
from ..limits import Bound

MAX_ARCHIVE_BYTES = Bound("OVPARTS_MAX_ARCHIVE_BYTES", 256 << 30, "bytes a dataset archive unpacks to")
MAX_ARCHIVE_MEMBERS = Bound("OVPARTS_MAX_ARCHIVE_MEMBERS", 5_000_000, "files in a dataset archive")
MAX_ZIP_RATIO = 200  # JSON annotations deflate about 10-20x, images barely; deflate tops out near 1000x


def _safe_name(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, None for the archive's own root entry; escaping paths are refused."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise DatasetError(
            f"The archive {archive.name} holds the absolute path {name!r}; it is not unpacked."
        )
    if ".." in path.parts:
        raise DatasetError(
            f"The archive {archive.name} holds {name!r}, which would land outside the target folder; "
            "it is not unpacked."
        )
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _check_totals(archive: Path, count: int, total: int) -> None:
    most_members, most_bytes = MAX_ARCHIVE_MEMBERS.value(), MAX_ARCHIVE_BYTES.value()
    if count > most_members:
        raise DatasetError(
            f"The archive {archive.name} holds {count} members, more than {most_members} "
            f"({MAX_ARCHIVE_MEMBERS.env}); it is not unpacked."
        )
    if total > most_bytes:
        raise DatasetError(
            f"The archive {archive.name} unpacks to {total} bytes, more than {most_bytes} "
            f"({MAX_ARCHIVE_BYTES.env}); it is not unpacked."
        )


def _plan_tar(archive: Path, handle: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    plan, total = [], 0
    for member in handle:
        target = _safe_name(member.name, archive)
        if member.issym() or member.islnk():
            raise DatasetError(
                f"The archive {archive.name} holds the link {member.name!r}; links are not unpacked, so "
                "nothing is."
            )
        if not (member.isfile() or member.isdir()):
            raise DatasetError(
                f"The archive {archive.name} holds {member.name!r}, which is neither a file nor a folder; "
                "it is not unpacked."
            )
        total += max(member.size, 0)
        if target is not None:
            plan.append((member, target))
        _check_totals(archive, len(plan), total)
    return plan


def _plan_zip(archive: Path, handle: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    plan, total = [], 0
    for member in handle.infolist():
        target = _safe_name(member.filename, archive)
        mode = member.external_attr >> 16
        if mode and (mode & 0o170000) not in (0, 0o100000, 0o040000):  # not a plain file or folder (a link)
            raise DatasetError(
                f"The archive {archive.name} holds {member.filename!r}, which is not a plain file (a link?); "
                "it is not unpacked."
            )
        if member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1) + (1 << 20):
            raise DatasetError(
                f"The archive {archive.name} member {member.filename!r} inflates more than {MAX_ZIP_RATIO} "
                "times; it is not unpacked."
            )
        total += member.file_size
        if target is not None:
            plan.append((member, target))
        _check_totals(archive, len(plan), total)
    return plan


def extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` (.tar, .tar.gz, .tgz, .zip) into the new folder ``dest`` after checking every member."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                for member, target in _plan_zip(archive, handle):
                    out = _inside(root, target)
                    if member.is_dir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with handle.open(member) as source, open(out, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)
            return
        with tarfile.open(archive) as handle:
            plan = _plan_tar(archive, handle)
            for member, target in plan:
                out = _inside(root, target)
                if member.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                source = handle.extractfile(member)
                if source is None:
                    continue
                with source, open(out, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DatasetError(
            f"The archive {archive.name} could not be unpacked ({type(err).__name__}: {err}); it may be "
            "truncated: delete it and download again."
        ) from None


def _inside(root: Path, target: PurePosixPath) -> Path:
    """``root / target``, refused if a folder on the way is a link that leads elsewhere."""
    out = root.joinpath(*target.parts)
    if os.path.commonpath([str(out.parent.resolve()), str(root)]) != str(root):
        raise DatasetError(f"{target} would land outside {root}; nothing more is unpacked.")
    return out
