"""Output files written without losing anything: checked before work starts, written atomically, cleaned up.

The one place ovparts writes a file that must never be seen half-written: segment results, reports, benchmark
tables, ``save_pretrained`` folders and training checkpoints all go through ``atomic_write``.

- ``check_output_dir`` / ``check_output_file`` run before a command's work (a batch, an evaluation) and turn
  every reason a path cannot be written (permissions, a full disk, a read-only or virtual file system, a
  dangling symbolic link, a file where a folder is wanted or the reverse) into one sentence.
- ``atomic_write`` (and its two common cases ``write_text`` and ``write_png``) writes through a temporary file named ``.ovparts-tmp-<pid>-<name>.<random>.part`` and
  renames it over the target, so a crash never leaves a half-written output. A run killed by SIGKILL can
  still leave such a file behind; ``clean_stale_temps`` removes the ones whose process is gone (and only
  files matching that pattern), and every output folder check calls it.
- ``terminate_cleanly`` turns SIGTERM into an ordinary exit, so the temporary file being written is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import OvpartsError

TEMP_PREFIX = ".ovparts-tmp-"
TEMP_SUFFIX = ".part"
# <pid>-<target name>.<mkstemp's 8 random characters>.part
TEMP_PATTERN = re.compile(r"^\.ovparts-tmp-(\d+)-.+\.[A-Za-z0-9_]{8}\.part$")
STALE_AFTER_S = 24 * 3600  # a temp file this old is stale even if its pid is alive again (pid reuse)


class OutputError(OvpartsError, OSError):
    """An output path cannot be written; the message says which and what to do."""

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0]) if self.args else ""


def output_error(error: OSError, path: str | os.PathLike, option: str = "--out") -> OutputError:
    """One sentence for an ``OSError`` met while writing ``path``."""
    where = str(path)
    reasons = {
        errno.ENOSPC: f"There is no space left on the device that holds {where}; free some space or choose "
        f"another {option}.",
        errno.EDQUOT: f"The disk quota is exhausted for {where}; free some space or choose another {option}.",
        errno.EACCES: f"The output {where} is not writable; choose another {option} or fix its permissions.",
        errno.EPERM: f"The output {where} is not writable; choose another {option} or fix its permissions.",
        errno.EROFS: f"The output {where} is on a read-only file system; choose another {option}.",
        errno.ENOTDIR: f"A part of the output path {where} is a file, not a folder; choose another {option}.",
        errno.EISDIR: f"The output {where} is a folder, not a file; choose another {option}.",
        errno.ENAMETOOLONG: f"The output path {where} is too long; choose a shorter {option}.",
        errno.ELOOP: f"The output path {where} loops through symbolic links; choose another {option}.",
    }
    reason = reasons.get(error.errno)
    if reason is None:
        detail = (error.strerror or type(error).__name__).rstrip(".").lower()
        reason = f"The output {where} cannot be written ({detail}); choose another {option}."
    return OutputError(reason)


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` as a folder ovparts can write into, or one sentence saying why not; nothing is created.

    It writes and removes a small probe file (in the nearest existing folder on the way), so permissions, a
    full disk, a read-only mount and virtual file systems such as /proc are all caught before any work
    starts. Stale temporary files of killed runs in the folder are removed on the way.
    """
    folder = Path(path)
    if folder.is_symlink() and not folder.exists():
        raise OutputError(
            f"The output folder {folder} is a symbolic link to something that does not exist; point "
            f"{option} at a real folder."
        )
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"The output folder {folder} exists and is not a folder; choose another {option}.")
    # A folder that does not exist yet is made when the first output is written; until then the probe
    # goes into its nearest existing ancestor, which must then be a writable folder.
    probe_in = folder
    while not probe_in.exists():
        if probe_in.is_symlink():
            raise OutputError(
                f"The output path {folder} goes through a symbolic link to something that does not exist; "
                f"choose another {option}."
            )
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise OutputError(
            f"A part of the output path {folder} is a file, not a folder; choose another {option}."
        )
    try:
        probe_write(probe_in)
    except OSError as err:
        raise output_error(err, folder, option) from err
    if probe_in == folder:
        clean_stale_temps(folder)
    return folder


def probe_write(folder: Path) -> None:
    """Create, write, flush and remove a small file in ``folder``: raises what a real output would meet."""
    handle, probe = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{os.getpid()}-probe.", suffix=TEMP_SUFFIX, dir=folder
    )
    try:
        os.write(handle, b"ovparts")
        os.fsync(handle)
    finally:
        os.close(handle)
        with contextlib.suppress(OSError):
            os.unlink(probe)


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` as a file ovparts can (over)write, its folder checked like ``check_output_dir``."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"The output {target} is a folder, not a file; choose another {option}.")
    if target.is_symlink() and not target.exists():
        raise OutputError(
            f"The output {target} is a symbolic link to something that does not exist; choose another {option}."
        )
    check_output_dir(target.parent if str(target.parent) else Path("."), option)
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(
            f"The output {target} is not writable; choose another {option} or fix its permissions."
        )
    return target


def temp_path(target: Path) -> Path:
    """A new, empty temporary file next to ``target`` with ovparts' own recognisable name."""
    handle, name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{os.getpid()}-{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    os.close(handle)
    return Path(name)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], option: str = "--out") -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves a half-written file, and
    a failure (full disk, permissions) removes the temporary file and raises one sentence."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
    except OSError as err:
        raise output_error(err, target, option) from err
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise output_error(err, target, option) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str, option: str = "--out") -> None:
    """``atomic_write`` of UTF-8 text (a JSON report, a Markdown table)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), option)


def write_png(path: str | os.PathLike, image: Any, option: str = "--out") -> None:
    """``atomic_write`` of a PIL image as PNG (the format is named, since the temporary file's suffix is not
    ``.png``)."""
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"), option)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike) -> int:
    """Remove ovparts' temporary files left in ``folder`` by runs that were killed; returns how many.

    Only regular files whose name matches ``TEMP_PATTERN`` are touched, and only when the process that
    made them is gone (or the file is over a day old): a run writing into the same folder right now keeps
    its files.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = TEMP_PATTERN.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            pid = int(match.group(1))
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            if (pid != os.getpid() and not _alive(pid)) or old:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


class Terminated(SystemExit):
    """SIGTERM as an exception: the stack unwinds, so temporary files are removed on the way out."""


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """While active (main thread only), SIGTERM exits with status 143 through ordinary unwinding."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame) -> None:  # noqa: ANN001
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
