"""Fetching one raw file: the Hugging Face hub, Google Drive (gdown) or plain HTTP, each resumable.

Every function writes the finished file at ``dest`` and nothing else there: a download that stops half-way
leaves a ``.part`` file (HTTP, gdown) or the hub's own incomplete blob beside it, which the next call resumes.
The transports are module attributes (``hub_download``, ``gdrive_download``, ``http_download``) so a test can
replace one of them; the real ones are used otherwise.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import WeightsNotFoundError
from .catalog import Source

CHUNK = 1 << 20
PART = ".part"


class DownloadError(WeightsNotFoundError):
    """The transport failed (no route, refused, cut short); the message says what to do."""


def offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``OVPARTS_OFFLINE`` set: nothing may be fetched."""
    return any(
        os.environ.get(var, "0").strip().lower() not in ("0", "", "false", "no", "off")
        for var in ("HF_HUB_OFFLINE", "OVPARTS_OFFLINE")
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(source: Source, dest: Path) -> Path:
    """Bring ``source`` to ``dest`` (its folder exists), with a progress bar; returns ``dest``."""
    if source.kind == "hub":
        return hub_download(source, dest)
    if source.kind == "gdrive":
        return gdrive_download(source, dest)
    return http_download(source.location, dest)


def _hub_download(source: Source, dest: Path) -> Path:
    """``hf_hub_download`` into ``dest``'s folder (its own resume and progress bar; ``HF_ENDPOINT`` honoured)."""
    from huggingface_hub import hf_hub_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        got = hf_hub_download(
            source.location,
            source.filename,
            repo_type=source.repo_type,
            revision=source.revision,
            local_dir=str(dest.parent),
            endpoint=endpoint,
        )
    except Exception as err:  # noqa: BLE001 - every hub failure becomes one sentence
        raise DownloadError(
            f"{source.describe()} could not be downloaded ({type(err).__name__}: {_first_line(err)})."
        ) from None
    got_path = Path(got)
    if got_path.resolve() != dest.resolve():
        shutil.move(str(got_path), dest)
    return dest


def _gdrive_download(source: Source, dest: Path) -> Path:
    """gdown (``pip install 'ovparts[weights]'``), resuming a partial file; Google Drive has no other API."""
    try:
        import gdown
    except ImportError:
        raise DownloadError(
            f"Downloading from Google Drive needs gdown (`pip install 'ovparts[weights]'`); or fetch "
            f"{source.url} by hand and put it at {dest}."
        ) from None
    partial = dest.with_name(dest.name + PART)
    try:
        got = gdown.download(id=source.location, output=str(partial), quiet=False, resume=True)
    except Exception as err:  # noqa: BLE001 - gdown raises many kinds (quota, permission, network)
        got = None
        reason = f"{type(err).__name__}: {_first_line(err)}"
    else:
        reason = "gdown returned nothing (quota exceeded or the file is private)"
    if not got or not partial.is_file():
        raise DownloadError(f"{source.url} could not be downloaded ({reason}); fetch it by hand into {dest}.")
    os.replace(partial, dest)
    return dest


def _http_download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """GET ``url`` into ``dest + .part``, resuming with a Range request, then rename it to ``dest``.

    A body shorter than the server's Content-Length is an interrupted download: the part is kept for the next
    call and one sentence says so.
    """
    from tqdm import tqdm

    partial = dest.with_name(dest.name + PART)
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URLs come from the catalog
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is already whole
            os.replace(partial, dest)
            return dest
        raise DownloadError(f"{url} could not be downloaded (HTTP {err.code} {err.reason}).") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url} could not be downloaded ({_first_line(err)}).") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        written = have
        try:
            with (
                open(partial, "ab" if resumed else "wb") as handle,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar,
            ):
                for block in iter(lambda: response.read(CHUNK), b""):
                    handle.write(block)
                    written += len(block)
                    bar.update(len(block))
        except http.client.IncompleteRead as err:  # the server hung up mid-body: keep what came
            with open(partial, "ab") as handle:
                handle.write(err.partial)
            written += len(err.partial)
            raise DownloadError(
                f"The download of {url} stopped after {written} bytes; run again to resume."
            ) from None
        except (OSError, http.client.HTTPException) as err:  # connection reset mid-body: keep the part
            raise DownloadError(
                f"The download of {url} stopped after {written} bytes ({_first_line(err)}); run again to resume."
            ) from None
    if total is not None and written < total:
        raise DownloadError(
            f"The download of {url} stopped after {written} of {total} bytes; run again to resume."
        )
    os.replace(partial, dest)
    return dest


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


hub_download = _hub_download
gdrive_download = _gdrive_download
http_download = _http_download
