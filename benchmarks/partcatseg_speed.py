"""PartCATSeg time and peak memory per image: full-size model, Pascal-Part-116 vocabulary, random weights.

The real architecture of the published Pascal model: CLIP ViT-B/16 at 384x384 (24x24 cost grid, frozen,
value-path last block), DINOv2 ViT-S/14 at 448x448 (32x32 tokens) as guidance, 80 prompt templates as cost
channels, stage A over 42 generalized parts + 16 objects + background, stage B over 116 object-specific parts
+ background, logits at 96x96, evaluation settings (pooling 2x2, no gradients).

Text embeddings are random unit vectors with the real shapes: the frozen text encoder runs once per
vocabulary (80 x 174 prompts) and is cached, so it is not part of the per-image cost; ``--with-text`` times it
once as well. Each stage (CLIP, DINO, head) is timed with ``ovparts.benchmarking.measure.median_seconds``
(median of ``--repeats`` runs after a warm-up); the total is their sum. Peak resident memory (``ru_maxrss``,
weights included) is read in a fresh subprocess per setting; on CUDA the peak of allocated memory instead.
``ovparts benchmark --model partcatseg`` measures the whole prediction against its peers; this script splits
one image's cost by encoder and compares the configs.

    nice python benchmarks/partcatseg_speed.py                # default (corrected) and faithful configs
    python benchmarks/partcatseg_speed.py --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys


def run_one(config: str, repeats: int, device_name: str, chunk: int, with_text: bool) -> dict:
    import torch

    import ovparts
    from ovparts.backbones.clip_dense import clip_dense_features
    from ovparts.backbones.resnet import renormalize
    from ovparts.benchmarking.measure import max_rss_bytes, median_seconds
    from ovparts.text import disk_cache

    device = torch.device(device_name)
    torch.manual_seed(0)
    model = ovparts.load_model("partcatseg", config=config, device=device_name)
    vocab = ovparts.Vocabulary.from_benchmark("pascal_part_116", official_order=True)
    index = model.vocabulary_index(vocab)
    prompts, dim = len(model.config.template_list), model.config.projection_dim
    t1 = len(index.generalized) + len(index.objects) + 1
    t2 = len(vocab) + 1
    unit = torch.nn.functional.normalize
    text_a = unit(torch.randn(t1, prompts, dim, device=device), dim=-1)
    text_b = unit(torch.randn(t2, prompts, dim, device=device), dim=-1)
    pixels = torch.randn(1, 3, 384, 384, device=device)
    params = sum(p.numel() for p in model.parameters())
    head_params = sum(p.numel() for p in model.head.parameters())
    cfg = model.config

    def clip():
        dense, _ = clip_dense_features(
            model.backbone.clip.vision_model,
            model.backbone.clip.visual_projection,
            pixels,
            (),
            cfg.switch("dense_residual"),
        )
        return dense

    def dino():
        image = renormalize(pixels, cfg.pixel_mean, cfg.pixel_std, cfg.dino_mean, cfg.dino_std)
        return model.dino(image, [(24, 24), (48, 48), (96, 96)])

    with torch.inference_mode():
        text_seconds = None
        if with_text:  # the encoder's cost, not a read of the on-disk text cache
            with disk_cache.disabled():
                text_seconds = median_seconds(lambda: model.text_embeddings(vocab), 1, device, warmup=0)
        base = max_rss_bytes()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        dense, guidance = clip(), dino()

        def head():
            return model.head(
                dense,
                text_a,
                text_b,
                guidance,
                index.specific_to_part,
                index.specific_to_object,
                class_chunk=chunk,
            )

        # each stage: median of ``repeats`` runs after one warm-up (the package's timer, synchronised on CUDA)
        median = {
            name: median_seconds(fn, repeats, device)
            for name, fn in (("clip", clip), ("dino", dino), ("head", head))
        }
        out = head()
    median["total"] = sum(median.values())
    assert out["specific_logits"].shape == (1, t2, 96, 96)
    assert out["part_object_logits"].shape == (1, t1, 96, 96)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else max_rss_bytes()
    return {
        "config": config,
        "classes": f"A {t1} / B {t2}",
        "chunk": chunk or "all",
        **{f"{k}_s": round(v, 3) for k, v in median.items()},
        "text_once_s": None if text_seconds is None else round(text_seconds, 1),
        "peak_gib": round(peak / 2**30, 2),
        "before_gib": round(base / 2**30, 2),
        "params_m": round(params / 1e6, 1),
        "head_params_m": round(head_params / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["default", "official"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--chunk", type=int, default=32, help="classes per chunk in per-class blocks (0 = all)"
    )
    parser.add_argument("--with-text", action="store_true", help="also time the one-off text encoding")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.one, args.repeats, args.device, args.chunk, args.with_text)))
        return
    print(f"PartCATSeg per-image cost, {platform.processor() or platform.machine()}, device {args.device}")
    rows = []
    for config in args.configs:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            config,
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
        ]
        cmd += ["--chunk", str(args.chunk), "--threads", str(args.threads)] + (
            ["--with-text"] if args.with_text else []
        )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(done.returncode)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row[k]).ljust(widths[k]) for k in keys))


if __name__ == "__main__":
    main()
