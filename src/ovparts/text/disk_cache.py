"""Encoded vocabularies on disk, shared by every process: the second process pays no text encoding.

PartCATSeg encodes each class with 80 prompt templates; at K = 116 that is about 14,000 prompts through the
CLIP text tower, minutes on a CPU, and every new process (a CLI call, a server restart, an evaluation) paid it
again. This cache keeps each encoded vocabulary as one safetensors file under ``$OVPARTS_HOME/text/``.

An entry's name is the SHA-256 of everything its values depend on: a fingerprint of the text tower (its
tensors and its tokenizer, hashed from the model in memory, so a changed checkpoint, a fine-tuned tower or
another tokenizer can never read a stale entry), the exact class texts, the exact template list, the
normalisation and the numeric precision. The entry also stores that key in full and it is compared on read.

Writes go to a temporary file renamed over the entry (``os.replace`` is atomic), so concurrent writers of one
vocabulary each leave a whole file and readers never see a partial one. A file that cannot be read (disk
trouble, truncation by hand) counts as a miss and is rewritten.

``OVPARTS_TEXT_CACHE=0`` (or ``--no-text-cache``) turns it off; ``OVPARTS_TEXT_CACHE_DISK_MB`` (default
2048) bounds the folder: an entry that would pass the bound is not written, and the process says so once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ConfigError, OvpartsError
from ..home import ovparts_home

ENABLE_VAR = "OVPARTS_TEXT_CACHE"
SIZE_VAR = "OVPARTS_TEXT_CACHE_DISK_MB"
DEFAULT_DISK_MB = 2048.0
FORMAT = 1  # bump when the meaning of a stored entry changes: older entries are then never read
TENSOR = "embeddings"
SUFFIX = ".safetensors"

log = logging.getLogger(__name__)
_override: bool | None = None
_warned_full = False


def set_enabled(enabled: bool | None) -> None:
    """Turn the disk cache on or off for this process (``None``: follow ``OVPARTS_TEXT_CACHE`` again)."""
    global _override
    _override = enabled


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within the block, nothing is read from or written to disk (what timing text encoding needs)."""
    global _override
    before = _override
    _override = False
    try:
        yield
    finally:
        _override = before


def enabled() -> bool:
    """Whether encoded vocabularies are read from and written to disk now."""
    if _override is not None:
        return _override
    return os.environ.get(ENABLE_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """``$OVPARTS_HOME/text``; not created until an entry is written."""
    return ovparts_home() / "text"


def max_bytes() -> int:
    """The folder's bound from ``OVPARTS_TEXT_CACHE_DISK_MB``; a bad value is one sentence."""
    text = os.environ.get(SIZE_VAR, "").strip()
    if not text:
        return int(DEFAULT_DISK_MB * 2**20)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{SIZE_VAR} must be a number of megabytes (0 or more), got {text!r}.")
    return int(value * 2**20)


def fingerprint_tensors(named: Iterable[tuple[str, torch.Tensor]], extra: bytes = b"") -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of the tensors (in the given order), plus ``extra``.

    The bytes are those in memory, so weights loaded from any file, converted any way, give the same
    fingerprint exactly when they are the same numbers.
    """
    digest = hashlib.sha256()
    for name, tensor in named:
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        if value.numel():
            raw = value.reshape(-1).view(torch.uint8) if value.element_size() > 1 else value.reshape(-1)
            digest.update(memoryview(raw.numpy()).cast("B"))
    digest.update(extra)
    return digest.hexdigest()


def entry_key(
    fingerprint: str,
    texts: tuple[str, ...],
    templates: tuple[str, ...] | None,
    normalize: bool,
    precision: str,
) -> str:
    """The full key of one encoded vocabulary, as canonical JSON."""
    record = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "texts": list(texts),
        "templates": None if templates is None else list(templates),
        "normalize": bool(normalize),
        "precision": precision,
    }
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def entry_path(key: str) -> Path:
    return cache_dir() / (hashlib.sha256(key.encode("utf-8")).hexdigest() + SUFFIX)


def load(key: str) -> torch.Tensor | None:
    """The stored embeddings of ``key``, or None (off, absent, unreadable, or stored for another key)."""
    if not enabled():
        return None
    path = entry_path(key)
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            stored_key = (handle.metadata() or {}).get("key")
        if stored_key != key:
            return None
        return load_file(str(path))[TENSOR]
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
        return None


def folder_bytes(folder: Path) -> int:
    """Bytes of the finished entries in ``folder`` (temporary files of writers in progress excluded)."""
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
            try:
                total += entry.stat().st_size
            except OSError:
                continue
    return total


def store(key: str, embeddings: torch.Tensor) -> bool:
    """Write one entry atomically; False when the cache is off, full, or the disk refuses (never raises).

    A cache is an optimisation: a read-only home or a full disk must not stop a segmentation, so a failed
    write is logged once and the embeddings are simply recomputed next time.
    """
    global _warned_full
    if not enabled():
        return False
    path = entry_path(key)
    value = embeddings.detach().to("cpu").contiguous()
    needed = value.numel() * value.element_size() + len(key) + 1024
    limit = max_bytes()
    existing = path.stat().st_size if path.is_file() else 0
    if folder_bytes(path.parent) - existing + needed > limit:
        if not _warned_full:
            _warned_full = True
            log.warning(
                "The text-embedding cache %s is full (%s = %d MB); this vocabulary's embeddings are not "
                "stored, so delete that folder or raise the limit to keep new ones.",
                path.parent,
                SIZE_VAR,
                limit // 2**20,
            )
        return False
    from ..output_files import atomic_write

    try:
        atomic_write(path, lambda tmp: save_file({TENSOR: value}, str(tmp), metadata={"key": key}))
    except (OvpartsError, OSError) as err:
        log.warning("The text-embedding cache entry %s could not be written (%s).", path, err)
        return False
    return True


def clear() -> int:
    """Remove every entry; returns how many were removed."""
    removed = 0
    folder = cache_dir()
    if not folder.is_dir():
        return 0
    for path in folder.glob("*" + SUFFIX):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
