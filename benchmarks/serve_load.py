"""Load test for `ovparts serve`: N concurrent clients post a photo to /v1/segment on loopback for a
bounded time, then report throughput, latency percentiles, errors and the server's memory before/after.

It starts its own server (`ovparts serve --config tiny` on a free 127.0.0.1 port) in a subprocess, so the
memory it reports is the server's alone, and stops it at the end. Every loop is bounded by the duration
and by --max-requests. Exit status 1 when a request failed or the server grew by more than --max-growth-mb.

    python benchmarks/serve_load.py --clients 4 --duration 20
    python benchmarks/serve_load.py --duration 3 --json     # what the test runs
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

VOCAB = "cat: head, ear, eye, nose, leg, paw, torso, tail"
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chelsea_jpeg() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def start_server(port: int, model: str, config: str, ui: bool, log_path: Path) -> subprocess.Popen:
    """`ovparts serve` in a child process, with this checkout's sources first on the path."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "ovparts.cli", "serve", "--model", model, "--config", config]
    command += ["--host", "127.0.0.1", "--port", str(port)] + ([] if ui else ["--no-ui"])
    log = log_path.open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"The server exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"The server did not answer /healthz within {START_TIMEOUT_S:.0f} s.")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def run_clients(url: str, image: bytes, clients: int, duration: float, max_requests: int) -> dict:
    """Each client posts back to back until the deadline or the shared request budget runs out."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    budget = [max_requests]
    deadline = time.monotonic() + duration

    def client() -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as session:
            while time.monotonic() < deadline:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                started = time.perf_counter()
                try:
                    response = session.post(
                        "/v1/segment",
                        files={"image": ("chelsea.jpg", image, "image/jpeg")},
                        data={"vocabulary": VOCAB},
                    )
                    outcome = str(response.status_code)
                    if response.status_code == 429:  # a polite client waits as told (bounded)
                        time.sleep(min(float(response.headers.get("retry-after", 1)), 2.0))
                    if response.status_code == 200:
                        response.json()["parts"]  # noqa: B018 - a 200 must carry a parsable answer
                except (httpx.HTTPError, ValueError, KeyError) as err:
                    outcome = type(err).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    statuses[outcome] += 1
                    if outcome == "200":
                        latencies.append(elapsed)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + REQUEST_TIMEOUT_S + 10)
    wall = time.perf_counter() - began
    total = sum(statuses.values())
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": total,
        "ok": statuses.get("200", 0),
        "errors": total - statuses.get("200", 0),
        "error_kinds": {k: v for k, v in statuses.items() if k != "200"},
        "req_per_s": round(statuses.get("200", 0) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def in_process_baseline(model: str, config: str, image: bytes, calls: int) -> float:
    """Median ms of the same work without HTTP (decode, segment, encode the answer), for the overhead ratio."""
    import torch

    import ovparts
    from ovparts.benchmarking.measure import median_seconds
    from ovparts.serve.limits import Limits, check_image_bytes
    from ovparts.serve.service import result_payload

    segmenter = ovparts.Segmenter(ovparts.load_model(model, config=config), keep_scores=False)
    vocabulary = ovparts.Vocabulary.parse(VOCAB)

    def request() -> None:
        result = segmenter(check_image_bytes(image, Limits()), vocabulary)
        result_payload(result, model, "png")

    return median_seconds(request, calls, torch.device("cpu"), warmup=2) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="hard cap on requests")
    parser.add_argument("--warmup", type=int, default=10, help="requests before the first memory reading")
    parser.add_argument("--model", default="clipseg")
    parser.add_argument("--config", default="tiny", help="named random config (default tiny)")
    parser.add_argument("--no-ui", action="store_true", help="serve the API only (default: page + API)")
    parser.add_argument("--max-growth-mb", type=float, default=64.0, help="allowed server RSS growth")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process reference timing")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    image = chelsea_jpeg()
    baseline_ms = None if args.no_baseline else in_process_baseline(args.model, args.config, image, 10)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ovparts-serve-load-{port}.log"
    process = start_server(port, args.model, args.config, not args.no_ui, log_path)
    try:
        wait_healthy(url, process, log_path)
        warm = run_clients(url, image, 1, duration=60.0, max_requests=args.warmup)
        if warm["errors"]:
            raise SystemExit(f"Warm-up requests failed: {warm['error_kinds']}.")
        before = rss_mb(process.pid)
        report = run_clients(url, image, args.clients, args.duration, args.max_requests)
        after = rss_mb(process.pid)
    finally:
        stop_server(process)
    report.update(
        rss_before_mb=round(before, 1),
        rss_after_mb=round(after, 1),
        rss_growth_mb=round(after - before, 1),
        max_growth_mb=args.max_growth_mb,
        model=f"{args.model}:{args.config}",
        ui=not args.no_ui,
        in_process_ms=None if baseline_ms is None else round(baseline_ms, 1),
    )
    if baseline_ms is not None and report["req_per_s"]:
        # With one model slot the server can at best do 1000 / baseline_ms requests per second.
        report["served_vs_in_process"] = round(report["req_per_s"] * baseline_ms / 1000, 2)
    failed = report["errors"] > 0 or report["rss_growth_mb"] > args.max_growth_mb
    if args.json:
        print(json.dumps(report))
    else:
        print(f"ovparts serve load test: {args.clients} clients, {report['seconds']} s, {report['model']}")
        print(
            f"  requests   {report['requests']} ({report['ok']} ok, {report['errors']} errors {report['error_kinds'] or ''})"
        )
        print(f"  throughput {report['req_per_s']} req/s")
        print(f"  latency    p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms, p99 {report['p99_ms']} ms")
        print(
            f"  server RSS {report['rss_before_mb']} MB -> {report['rss_after_mb']} MB "
            f"({report['rss_growth_mb']:+} MB, bound {args.max_growth_mb} MB)"
        )
        if baseline_ms is not None:
            print(
                f"  in-process same work: {baseline_ms:.1f} ms/request; served throughput is "
                f"{report.get('served_vs_in_process', 0)}x of that ceiling (1.0 = no HTTP overhead)"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
