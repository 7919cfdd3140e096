"""A short run of benchmarks/serve_load.py: concurrent clients on loopback, no errors, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
def test_short_load_run_has_no_errors_and_bounded_memory():
    pytest.importorskip("psutil", reason="the load test needs psutil (the dev extra)")
    command = [sys.executable, str(SCRIPT), "--clients", "4", "--duration", "3", "--warmup", "3"]
    command += ["--max-growth-mb", "64", "--no-baseline", "--json"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.stdout.strip(), run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\nload: {report}")
    assert report["errors"] == 0, report["error_kinds"]
    assert report["ok"] >= 4, "every client should have finished at least one request"
    assert report["rss_growth_mb"] <= report["max_growth_mb"]
    assert run.returncode == 0, run.stderr[-2000:]
