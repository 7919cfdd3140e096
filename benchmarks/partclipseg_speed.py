"""PartCLIPSeg forward: ovparts against the official code's way of running it, same weights, same run.

Full-size architecture (CLIPSeg rd64-refined: ViT-B/16 at 352x352) with random weights, one image, the full
Pascal-Part-116 test vocabulary (116 object-specific parts -> 42 generalized parts + 16 objects + background
= 59 conditional classes). Three ways of computing the same logits:

- ``ovparts``: the image is encoded once; the trunk decodes the 59 classes in chunks without keeping
  attention maps; the object-specific branch runs per chunk of parts.
- ``official``: what ``PartCLIPSegForImageSegmentation.forward`` does: the image is encoded once, then its
  three activations (485 x 768 each) are repeated once per class, all 59 classes are decoded in one batch
  with eager attention whose probabilities are returned for every decoder block (``USE_ATTENTION: True`` in
  all official configs), then the object-specific branch runs for all 117 entries at once.
- ``per-class loop``: CLIPSeg used the documented transformers way, the image repeated once per class, so
  the CLIP image encoder runs once per class (one class at a time here, to bound memory).

Each variant runs in its own fresh process (same seed, same weights); peak memory is the peak resident
set size above the level just before the forward, sampled every 2 ms during the first (cold) forward.
Times are medians over ``--repeats`` runs after it.

    nice python benchmarks/partclipseg_speed.py --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ovparts.benchmarking.measure import PeakMemory
from ovparts.methods.partclipseg.peers import official_partclipseg_forward as official_forward
from ovparts.methods.partclipseg.peers import per_class_partclipseg_forward as per_class_forward

VARIANTS = ("ovparts", "official", "per-class loop")


def run_variant(variant: str, threads: int, repeats: int, out_file: str, queue) -> None:
    torch.set_num_threads(threads)
    import ovparts

    torch.manual_seed(0)
    model = ovparts.load_model("partclipseg", config="default").eval()
    vocab = ovparts.Vocabulary.from_benchmark("pascal_part_116")
    layout = model.layout(vocab)
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, 352, 352)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            model.clear_vocabulary_cache()  # the official code encodes the texts on every forward
            conditions = model.conditions(layout)
            if variant == "ovparts":
                logits = model.predict(pixels, vocab)
                return torch.cat([logits.parts, logits.background], dim=1)
            if variant == "official":
                return official_forward(model, pixels, conditions, layout)
            return per_class_forward(model, pixels, conditions, layout)

    with PeakMemory(torch.device("cpu")) as peak:
        logits = forward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    torch.save(logits, out_file)
    queue.put({"variant": variant, "seconds": statistics.median(times), "peak_bytes": peak.peak})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant after the cold one")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS[1:]), choices=VARIANTS[1:])
    args = parser.parse_args()
    args.variants = ["ovparts", *args.variants]  # the reference every ratio is taken against

    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print("PartCLIPSeg full size, random weights, one 352x352 image, Pascal-Part-116 (T=116, N=59)")
    context = mp.get_context("spawn")
    results, outputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants:
            queue = context.Queue()
            out_file = str(Path(folder) / f"{variant.replace(' ', '_')}.pt")
            process = context.Process(
                target=run_variant, args=(variant, args.threads, args.repeats, out_file, queue)
            )
            process.start()
            results[variant] = queue.get()
            process.join()
            row = results[variant]
            print(
                f"  {variant}: {row['seconds']:.2f} s, peak +{row['peak_bytes'] / 2**20:.0f} MiB", flush=True
            )
            outputs[variant] = torch.load(out_file, weights_only=True)
    base = results["ovparts"]
    print(f"{'variant':>15} {'time s':>8} {'peak MiB':>9} {'time x':>7} {'memory x':>9} {'max |diff|':>11}")
    for variant, row in results.items():
        ratio_t = row["seconds"] / base["seconds"]
        ratio_m = row["peak_bytes"] / max(base["peak_bytes"], 1)
        diff = (outputs[variant] - outputs["ovparts"]).abs().max().item()
        print(
            f"{variant:>15} {row['seconds']:>8.2f} {row['peak_bytes'] / 2**20:>9.0f} "
            f"{ratio_t:>6.1f}x {ratio_m:>8.1f}x {diff:>11.2e}"
        )
    print("time x / memory x: relative to ovparts (higher = ovparts is that many times faster / smaller).")


if __name__ == "__main__":
    main()
