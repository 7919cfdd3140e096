"""Running a multi-process (DDP) command in a test: bounded in time, and telling where it hung.

Lightning's launcher starts the extra ranks as children that share the command's output pipes, so a hung
rank would keep ``subprocess.run`` waiting even after rank 0 was killed. Here the command runs in its own
process group with its output in files; on timeout the whole group gets SIGABRT first (with
``PYTHONFAULTHANDLER`` set, every Python process in it, loader workers included, prints each thread's stack)
and then SIGKILL, and the test fails with those stacks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence

import pytest


def run_ranks(command: Sequence[str], env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` to completion (or fail the test after ``timeout`` s with every process's stacks)."""
    env = {**env, "PYTHONFAULTHANDLER": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True, start_new_session=True)
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGABRT)
            time.sleep(3)  # let faulthandler write the stacks
            _signal_group(child.pid, signal.SIGKILL)
            child.wait()
            err.seek(0)
            pytest.fail(f"{command[1:]} did not finish in {timeout} s; its stacks:\n{err.read()[-12000:]}")
        finally:
            _signal_group(child.pid, signal.SIGKILL)  # a rank or worker left behind must not outlive the test
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, code, out.read(), err.read())


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)
