"""Two checkouts of ovparts timed in alternation, in one run: what a change saved, measured on the same load.

Usage: python benchmarks/ab_commits.py BEFORE_SRC[:VARIANT] AFTER_SRC[:VARIANT] MODEL K [REPEATS]

Each side is an ``ovparts benchmark`` worker process (:class:`ovparts.benchmarking.runner.ProcessWorker`)
importing ovparts from its own ``src`` folder; the runner times one forward of each in turn, round after
round, as ``ovparts benchmark`` does for a model and its peers. ``VARIANT`` (default ``ovparts``) names a
benchmark peer instead, e.g. ``src:official src MODEL K`` times the official structure against ovparts
alone, without the slow reference peer that ``ovparts benchmark`` also runs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys

from ovparts.benchmarking.measure import load_average
from ovparts.benchmarking.runner import ProcessWorker, Setting


def main() -> None:
    before_src, after_src, model, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    workers = {}
    for name, side in (("before", before_src), ("after", after_src)):
        src, _, variant = side.partition(":")
        setting = Setting(
            model, k, "native", "cpu", variant or "ovparts", repeats, 1, "fp32", encoder=False, threads=2
        )
        os.environ["PYTHONPATH"] = os.path.abspath(src)
        workers[name] = ProcessWorker(setting)
    load = load_average()
    times: dict[str, list[float]] = {name: [] for name in workers}
    for _ in range(repeats):
        for name, worker in workers.items():
            times[name].append(worker.time_once())
    for worker in workers.values():
        worker.close()
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    rounds = statistics.median(b / a for b, a in zip(times["before"], times["after"], strict=True))
    print(
        json.dumps(
            {
                "model": model,
                "sides": [before_src, after_src],
                "k": k,
                "before_s": before,
                "after_s": after,
                "speedup": before / after,
                "speedup_rounds": rounds,
                "times": times,
                "load_average": [load, load_average()],
            }
        )
    )


if __name__ == "__main__":
    main()
