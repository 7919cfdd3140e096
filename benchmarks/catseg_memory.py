"""CAT-Seg time and peak memory, with and without class chunking, full-size ViT-B/16 at 384x384.

Random weights with the real architecture (CVPR ViT-B/16: CLIP + 2-layer aggregator, 24x24 cost grid,
logits at 96x96). One image, K classes (116 = Pascal-Part-116, 234 = ADE20K-Part-234), evaluation settings
(pooling 1x1, no gradients). Text embeddings are random unit vectors: the text encoder runs once per
vocabulary and is cached, so it is not part of the per-image cost measured here.

Each (K, chunk) runs in a fresh subprocess so that peak resident memory (ru_maxrss, which includes the
~0.6 GB of fp32 weights) belongs to that setting alone.

    python benchmarks/catseg_memory.py --ks 116 234 --chunks 0 32 16
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def run_one(k: int, chunk: int, repeats: int) -> dict:
    import torch

    import ovparts

    torch.manual_seed(0)
    model = ovparts.load_model("catseg", config="vit-b")
    pixels = torch.randn(1, 3, 384, 384)
    text = torch.nn.functional.normalize(torch.randn(k, 1, 512), dim=-1)
    base = _peak_gib()
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            logits = model(pixels, text, class_chunk=chunk)
            times.append(time.perf_counter() - start)
    assert logits.shape == (1, k, 96, 96)
    return {
        "k": k,
        "chunk": chunk or "all",
        "seconds": statistics.median(times[1:]) if repeats else times[0],
        "peak_gib": _peak_gib(),
        "weights_gib": base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[116, 234])
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 32], help="0 = all classes at once")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.one[0], args.one[1], args.repeats)))
        return
    print(
        f"CAT-Seg ViT-B/16 @384, random weights; {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(f"{'K':>5} {'chunk':>6} {'time [s]':>9} {'peak RSS [GiB]':>15} {'after build [GiB]':>18}")
    for k in args.ks:
        for chunk in args.chunks:
            cmd = [sys.executable, __file__, "--one", str(k), str(chunk), "--repeats", str(args.repeats)]
            cmd += ["--threads", str(args.threads)]
            out = (
                subprocess.run(cmd, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            print(
                f"{r['k']:>5} {r['chunk']:>6} {r['seconds']:>9.2f} {r['peak_gib']:>15.2f} {r['weights_gib']:>18.2f}"
            )


if __name__ == "__main__":
    main()
