"""How loader worker processes start inside a distributed rank.

A rank of a multi-process run has threads that are not Python's: gloo's transport loop, Lightning's child
observer in rank 0. ``fork()`` copies only the calling thread, so a worker forked while one of those threads
holds a lock (an allocator's, a logger's) can wait forever on it, and the rank then waits forever on the
worker. That hazard is why Python 3.14 made ``forkserver`` the default start method on Linux. Distributed
ranks therefore start their loader workers from a forkserver: a clean process started once per rank, which
imports the modules named here once, so that each worker it forks starts in milliseconds.

Like ``spawn``, a forkserver worker imports the user's main script again (as ``__mp_main__``) before it
unpickles its dataset. A script that starts a multi-process run at its top level, not under
``if __name__ == "__main__":``, would start it again inside every loader worker;
:func:`refuse_reimported_main` turns that into one sentence instead of a nested run.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from ..errors import ConfigError

PRELOAD = ("torch", "ovparts.evaluation.loop", "ovparts.batch", "ovparts.training.data")
"""Modules the forkserver imports before it forks any worker (what unpickling a loader's dataset needs)."""


def loader_worker_options(num_workers: int, world_size: int) -> dict[str, Any]:
    """``DataLoader`` keyword arguments for ``num_workers`` workers of one of ``world_size`` ranks.

    A single process (``world_size`` 1) keeps the platform's default: it runs no foreign threads, and a
    forked worker needs nothing pickled. So does a run with no workers, or a platform with no forkserver
    (Windows, where the default is spawn, which has no fork hazard either).
    """
    if num_workers <= 0 or world_size <= 1 or "forkserver" not in multiprocessing.get_all_start_methods():
        return {"num_workers": max(num_workers, 0)}
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))  # no effect once this rank's server runs (same list)
    return {"num_workers": num_workers, "multiprocessing_context": context}


def refuse_reimported_main(what: str) -> None:
    """Stop ``what`` (a multi-process run) when it is being started by a worker importing the main script."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(
            f"{what} was started while a loader worker imported your script again; put the script's work under "
            '`if __name__ == "__main__":` (multi-process runs start their loader workers from a forkserver, '
            "which imports the main script, as spawn does)."
        )
