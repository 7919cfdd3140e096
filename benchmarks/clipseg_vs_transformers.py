"""ovparts CLIPSeg against transformers' CLIPSegForImageSegmentation, same weights, same run.

Full-size rd64-refined architecture (ViT-B/16, 352x352) with random weights, one image, K prompts.
transformers is used the documented way: the processor repeats the image once per prompt and the model
re-encodes it each time (run in batches of --reference-batch prompts to bound its memory; the work per
prompt is the same). ovparts encodes the image once and decodes all prompts in class chunks.

    python benchmarks/clipseg_vs_transformers.py --ks 10 116 234
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
from transformers import AutoTokenizer, CLIPSegForImageSegmentation

import ovparts
from ovparts.testing import RD64_REFINED, write_clipseg_checkpoint


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 116, 234], help="numbers of prompts")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ovparts (median reported)")
    parser.add_argument("--reference-batch", type=int, default=16, help="prompts per transformers forward")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = write_clipseg_checkpoint(tempfile.mkdtemp(prefix="clipseg-rd64-"), RD64_REFINED, seed=0)
    reference = CLIPSegForImageSegmentation.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ours = ovparts.load_model("clipseg", weights=str(folder))
    pixels = torch.randn(1, 3, 352, 352)
    words = [f"object {i} part {i % 7}" for i in range(max(args.ks))]

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'K':>5} {'transformers s':>15} {'ovparts s':>10} {'speed-up':>9} {'max |diff|':>11}")
    rows = []
    for k in args.ks:
        texts = words[:k]
        tokens = tokenizer(texts, padding=True, return_tensors="pt")

        def run_reference(texts=texts, tokens=tokens):
            outs = []
            with torch.inference_mode():
                for s in range(0, len(texts), args.reference_batch):
                    n = len(texts[s : s + args.reference_batch])
                    out = reference(
                        input_ids=tokens["input_ids"][s : s + n],
                        attention_mask=tokens["attention_mask"][s : s + n],
                        pixel_values=pixels.repeat(n, 1, 1, 1),
                    )
                    outs.append(out.logits.reshape(n, 352, 352))
            return torch.cat(outs)

        def run_ours(texts=texts):
            with torch.inference_mode():
                ours.clear_vocabulary_cache()  # count text encoding, as the reference does
                return ours(pixels, ours.text_conditions(texts)).logits[0]

        start = time.perf_counter()
        ref_logits = run_reference()
        t_ref = time.perf_counter() - start  # one run: it is the slow side and scales linearly in K
        t_ours = timed(run_ours, args.repeats)
        diff = (run_ours() - ref_logits).abs().max().item()
        rows.append(
            {
                "k": k,
                "transformers_s": t_ref,
                "ovparts_s": t_ours,
                "speedup": t_ref / t_ours,
                "max_abs_diff": diff,
            }
        )
        print(f"{k:>5} {t_ref:>15.2f} {t_ours:>10.3f} {t_ref / t_ours:>8.1f}x {diff:>11.2e}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
