"""Evaluation throughput in records/s: one process against several, Oracle-Obj with and without the class
restriction, measured in the same run.

The model is CLIPSeg at its native size (the rd64-refined architecture, 352x352 input; random weights, since
speed does not depend on their values) on a synthetic Pascal-Part-116 split (``ovparts.data.synthetic``,
images of ``--size``). Four timings, each after a warm-up image that encodes the vocabulary:

- 1 process, Oracle-Obj, the head run on the present objects' parts only (the default);
- 1 process, Oracle-Obj, the whole vocabulary (``restrict_classes=False``);
- N processes (``--devices``), with the restriction: the scoring loop alone (``LAST_LOOP_SECONDS``: from
  the start of the shards to the final all-reduce, launch and model set-up left out; each rank's first image
  pays its text encoding) and end to end.

The CPU threads are split evenly between the processes (all of them for one process), so the comparison
is between ways of using the same machine; one process with a rank's share of the threads is timed too. Lightning re-runs this script once per extra rank, so the
multi-process measurement comes first and the extra ranks stop after it.

``python benchmarks/evaluation_scaling.py [--images 12] [--devices 2] [--device cpu]``
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

import ovparts
from ovparts.data import load_dataset, write_synthetic
from ovparts.evaluation import distributed


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
        return f"{model}, {os.cpu_count()} logical CPUs"
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return f"{platform.processor() or 'unknown CPU'}, {os.cpu_count()} logical CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=(375, 500), metavar=("H", "W"))
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default="/tmp/ovparts-evaluation-scaling")
    args = parser.parse_args()
    child = os.environ.get("LOCAL_RANK", "0") != "0"
    root = Path(args.root) / f"{args.images}x{args.size[0]}x{args.size[1]}"
    if not child and not (root / "PascalPart116").is_dir():
        write_synthetic("pascal_part_116", root, images_per_split=args.images, size=tuple(args.size))
    reader = load_dataset("pascal_part_116", root)
    records = sum(len(sample.regions) for sample in reader)
    cores = os.cpu_count() or 1
    torch.manual_seed(0)
    model = ovparts.load_model("clipseg", config="default", device=args.device)
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"

    def run(**options) -> float:
        # warm-up on one image (the text encoder, the allocator), then the timed pass
        ovparts.evaluate(model, reader, "oracle_obj", progress=False, limit=1, **options)
        start = time.perf_counter()
        report = ovparts.evaluate(model, reader, "oracle_obj", progress=False, **options)
        assert report.counts["records"] == records
        return time.perf_counter() - start

    # N processes first: the extra ranks re-run this script up to here, join, and stop.
    torch.set_num_threads(max(1, cores // args.devices))
    start = time.perf_counter()
    ovparts.evaluate(
        model, reader, "oracle_obj", progress=False, devices=args.devices, accelerator=accelerator
    )
    wall = time.perf_counter() - start
    if child:
        return
    loop = distributed.LAST_LOOP_SECONDS[0]
    load = os.getloadavg()[0]
    single_thread = run() if cores > 1 else None  # the per-process share of the threads, for comparison
    torch.set_num_threads(cores)
    restricted = run()
    full = run(restrict_classes=False)

    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads in one process")
    print(f"load average before the single-process runs: {load:.1f}")
    print(
        f"synthetic Pascal-Part-116: {len(reader)} images of {args.size[0]}x{args.size[1]}, {records} records"
    )
    rows = [
        ("1 process, Oracle-Obj, whole vocabulary", full),
        ("1 process, Oracle-Obj, present objects' parts", restricted),
        (f"{args.devices} processes, present objects' parts (scoring loop)", loop),
        (f"{args.devices} processes, present objects' parts (end to end)", wall),
    ]
    if single_thread is not None:
        rows.insert(
            2,
            (
                f"1 process with {max(1, cores // args.devices)} thread(s), present objects' parts",
                single_thread,
            ),
        )
    for label, seconds in rows:
        print(f"  {label:58} {records / seconds:7.2f} records/s  ({seconds:.1f} s)")
    print(f"class restriction: x{full / restricted:.2f}")
    print(
        f"{args.devices} processes vs 1 (loop): x{restricted / loop:.2f}; end to end: x{restricted / wall:.2f}"
    )
    if single_thread is not None:
        print(f"{args.devices} processes vs 1 with a rank's threads (loop): x{single_thread / loop:.2f}")


if __name__ == "__main__":
    main()
