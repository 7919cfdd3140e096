"""First-process vs second-process wall time of `ovparts segment` with PartCATSeg at K = 116.

Each run is a fresh `ovparts segment` process on one photo with the whole Pascal-Part-116 vocabulary and the
published architecture (CLIP ViT-B/16 + DINOv2-S, 80 prompt templates) at random weights, saved once as a
checkpoint folder that every process loads. Both processes share
one new ``$OVPARTS_HOME``: the first encodes the vocabulary (about 14,000 prompts) and writes it to the on-disk
text cache, the second reads it back. ``--no-cache`` adds a third run with ``OVPARTS_TEXT_CACHE=0``. Each run
reports its wall time and its CPU time (user + system over all threads): on a shared machine the CPU time is
the figure that does not depend on what else runs.

    nice python benchmarks/text_cache_processes.py --config official
    python benchmarks/text_cache_processes.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def segment_once(image: Path, out: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, float]:
    """Wall time and CPU time (user + system, all threads) of one `ovparts segment` process."""
    command = [
        *(
            args.ovparts.split()
            if args.ovparts
            else [sys.executable, "-c", "from ovparts.cli import main; main()"]
        ),
        "segment",
        str(image),
        "--model",
        "partcatseg",
        "--weights",
        str(args.weights),
        "--benchmark",
        "pascal_part_116",
        "--device",
        args.device,
        "--out",
        str(out),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="official", help="partcatseg config (default: official)")
    parser.add_argument(
        "--weights", type=Path, help="a partcatseg checkpoint folder (default: save a random one of --config)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-cache", action="store_true", help="also time a run with the cache turned off")
    parser.add_argument("--ovparts", help="command that runs the CLI (default: this Python)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="ovparts-text-cache-"))
    try:
        try:
            from skimage import data

            pixels = data.chelsea()
        except ImportError:
            pixels = np.random.default_rng(0).integers(0, 256, (300, 450, 3), dtype=np.uint8)
        image = work / "photo.png"
        Image.fromarray(pixels).save(image)
        if args.weights is None:
            # one random checkpoint read by every process: random initialisation differs between processes,
            # and embeddings of other weights must (and would) never be read from the cache
            import ovparts

            args.weights = work / "checkpoint"
            ovparts.load_model("partcatseg", config=args.config).save_pretrained(args.weights)
        env = {**os.environ, "OVPARTS_HOME": str(work / "home"), "OVPARTS_TEXT_CACHE": "1"}
        figures = {
            "cpu": cpu_name(),
            "device": args.device,
            "config": args.config,
            "threads": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "first_process": segment_once(image, work / "out1", args, env),
            "second_process": segment_once(image, work / "out2", args, env),
            "load_average_after": os.getloadavg(),
        }
        if args.no_cache:
            off = {**env, "OVPARTS_TEXT_CACHE": "0"}
            figures["cache_off"] = segment_once(image, work / "out3", args, off)
        entries = list((work / "home" / "text").glob("*.safetensors"))
        figures["entries"] = len(entries)
        figures["entry_bytes"] = sum(p.stat().st_size for p in entries)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
