"""An evaluation process for the multi-process tests: ``python worker.py ROOT DATASET OUT_JSON [options]``.

Lightning's DDP launcher re-runs this very command line once per extra rank, so it must be a script. Every
rank writes its report as ``OUT_JSON.rank<N>`` (the reports of all ranks must agree); rank 0 also writes
``OUT_JSON``. With ``--matrix``, DATASET is a comma-separated list and the output holds, for every dataset,
protocol and rule, the report (``matrix_entries``), with its floats written exactly.
"""

import argparse
import json
import os

from fakes import SlowShifted

import ovparts
from ovparts.data import load_dataset
from ovparts.evaluation import PROTOCOLS, RULES


def exact(report):
    """A report as text that changes with any bit of any number (``repr`` of floats, NaN included)."""
    return {
        "dict": report.to_dict(),
        "metrics": json.dumps(report.metrics),
        "official": json.dumps(report.official),
        "confusion": report.confusion.tolist(),
        "boundary_d2": None if report.boundary_d2 is None else report.boundary_d2.tolist(),
        "boundary": None if report.boundary is None else report.boundary.per_class().tolist(),
    }


def matrix_entries(root, datasets, devices, workers):
    """Every dataset x protocol, every rule applied to the run's accumulators (boundary IoU of both kinds)."""
    entries = {}
    for name in datasets:
        reader = load_dataset(name, root)
        segmenter = SlowShifted(reader)
        boundary = "both" if len(reader.vocabulary.parts) < 255 else "per_class"  # d2's uint8 limit
        for protocol in PROTOCOLS:
            report = ovparts.evaluate(
                segmenter,
                name,
                root=root,
                protocol=protocol,
                boundary=boundary,
                progress=False,
                devices=devices,
                accelerator="cpu",
                num_workers=workers,
            )
            for rule in RULES:
                entries[f"{name}/{protocol}/{rule}"] = exact(report.with_rule(rule))
    return entries


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("dataset")
    parser.add_argument("out")
    parser.add_argument("--protocol", default="oracle_obj")
    parser.add_argument("--average", default="ovparts")
    parser.add_argument("--boundary", default="auto")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--save", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--matrix", action="store_true")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))

    if args.matrix:
        data = json.dumps(matrix_entries(args.root, args.dataset.split(","), args.devices, args.workers))
        with open(f"{args.out}.rank{rank}", "w", encoding="utf-8") as handle:
            handle.write(data)
        raise SystemExit(0)

    segmenter = SlowShifted(load_dataset(args.dataset, args.root), delay=args.delay)
    report = ovparts.evaluate(
        segmenter,
        args.dataset,
        root=args.root,
        protocol=args.protocol,
        average=args.average,
        boundary=args.boundary,
        strict=args.strict,
        progress=False,
        save_predictions=args.save,
        resume=args.resume,
        devices=args.devices,
        accelerator="cpu",
        num_workers=args.workers,
    )
    data = json.dumps(exact(report), sort_keys=True)
    with open(f"{args.out}.rank{rank}", "w", encoding="utf-8") as handle:
        handle.write(data)
    if rank == 0:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(data)
