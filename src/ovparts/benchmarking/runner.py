"""Run the benchmark: one setting (model, K, variant) per fresh process, ratios against peers, a table.

A fresh process per setting is what makes CPU peak memory mean something: ``ru_maxrss`` only grows, so a
process that built three models cannot say which one needed the memory. ``isolate=False`` runs everything
in this process instead (tests, quick looks); then only the sampled per-forward peak is meaningful.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field

import torch

from ..precision import PRECISIONS, autocast, check_precision
from .cases import DEFAULT_CLASSES, MODELS, PEERS, build_case
from .measure import PeakMemory, count_flops, load_average, matmul_rate, max_rss_bytes, median_seconds


@dataclass(frozen=True)
class Setting:
    """Everything one measurement process needs; JSON-serialisable so it can cross a process boundary."""

    model: str
    k: int
    size: str = "native"
    device: str = "cpu"
    variant: str = "ovparts"
    repeats: int = 3
    batch: int = 4
    precision: str = "fp32"
    encoder: bool = True
    peer_classes: int | None = None
    threads: int | None = None


def measure_setting(setting: Setting) -> dict:
    """Latency, memory (and for ovparts: text cost, batched throughput, encoder FLOP rate) of one setting."""
    if setting.threads:
        torch.set_num_threads(setting.threads)
    device = torch.device(setting.device)
    case = build_case(setting.model, setting.size, setting.k, device, setting.variant, setting.peer_classes)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(1, 3, *case.image_size, generator=generator).to(device)
    result: dict = {"variant": setting.variant, "image_size": list(case.image_size)}
    with torch.inference_mode(), autocast(device, setting.precision):
        with PeakMemory(device) as peak:
            case.forward(pixels)  # the cold run: fills the text cache, and is the warm-up
        seconds = median_seconds(lambda: case.forward(pixels), setting.repeats, device, warmup=0)
        result.update(
            latency_s=seconds * case.scale,
            forward_peak_bytes=peak.peak,
            peak_rss_bytes=max_rss_bytes(),
            classes_measured=case.classes_measured or setting.k,
            extrapolated=case.scale != 1.0,
        )
        if case.text is not None:
            result["text_s"] = median_seconds(case.text, 1, device, warmup=0)
        if setting.variant == "ovparts" and setting.batch > 1:
            batch = pixels.repeat(setting.batch, 1, 1, 1)
            batch_s = median_seconds(lambda: case.forward(batch), setting.repeats, device, warmup=1)
            result.update(batch=setting.batch, images_per_s=setting.batch / batch_s)
        if setting.encoder and case.encoder is not None:
            # The yardstick is measured right around the encoder, in this process: the load on a shared
            # machine changes within minutes, so a rate from the start of the run would not compare.
            dtype = PRECISIONS[setting.precision] or torch.float32
            before = matmul_rate(device, 2048, dtype)
            flops = count_flops(lambda: case.encoder(pixels))
            encoder_s = median_seconds(lambda: case.encoder(pixels), setting.repeats, device, warmup=1)
            yardstick = (before + matmul_rate(device, 2048, dtype)) / 2
            result.update(
                encoder_flops=flops,
                encoder_s=encoder_s,
                encoder_flop_rate=flops / encoder_s,
                matmul_flop_rate=yardstick,
                encoder_fraction_of_matmul=flops / encoder_s / yardstick,
            )
    result["load_average"] = load_average()
    if device.type == "cuda":
        result["peak_device_bytes"] = torch.cuda.max_memory_allocated(device)
    return result


def _in_fresh_process(setting: Setting) -> dict:
    command = [sys.executable, "-m", "ovparts.benchmarking.runner", json.dumps(asdict(setting))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"The benchmark of {setting} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class BenchmarkOptions:
    models: tuple[str, ...] = MODELS
    classes: tuple[int, ...] = DEFAULT_CLASSES
    size: str = "native"
    device: str = "cpu"
    repeats: int = 3
    batch: int = 4
    precision: str = "fp32"
    peers: bool = True
    peer_at: tuple[int, ...] | None = None  # the K values at which peers run (None: every K)
    peer_classes: int | None = None  # cap on the prompts transformers' CLIPSeg runs (then scaled to K)
    isolate: bool = True
    threads: int | None = None
    log: object = field(default=None, repr=False)


def run_benchmark(options: BenchmarkOptions) -> dict:
    """Every (model, K): ovparts, then its peer; ratios peer / ovparts; the matmul yardstick of this run."""
    device = torch.device(options.device)
    check_precision(options.precision, device)
    if options.threads:
        torch.set_num_threads(options.threads)
    dtype = PRECISIONS[options.precision] or torch.float32
    meta = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": options.threads or torch.get_num_threads(),
        "precision": options.precision,
        "size": options.size,
        "isolated_processes": options.isolate,
        "load_average_start": load_average(),
        "matmul_size": 2048,
        "matmul_flop_rate": matmul_rate(device, 2048, dtype),
    }
    run = _in_fresh_process if options.isolate else measure_setting
    rows = []
    for model in options.models:
        for index, k in enumerate(options.classes):
            base = Setting(
                model,
                k,
                options.size,
                options.device,
                "ovparts",
                options.repeats,
                options.batch,
                options.precision,
                encoder=index == 0,  # the encoder does not depend on K: measure it once per model
                peer_classes=options.peer_classes,
                threads=options.threads,
            )
            row = {"model": model, "k": k, **run(base)}
            _log(options, f"{model} K={k}: {row['latency_s']:.3f} s")
            if options.peers and (options.peer_at is None or k in options.peer_at):
                peer = run(Setting(**{**asdict(base), "variant": "peer", "encoder": False}))
                peer["name"] = PEERS[model]
                row["peer"] = peer
                row["speedup"] = peer["latency_s"] / row["latency_s"]
                row["speedup_incl_text"] = peer["latency_s"] / (row["latency_s"] + row.get("text_s", 0.0))
                row["memory_ratio"] = peer["forward_peak_bytes"] / max(row["forward_peak_bytes"], 1)
                _log(options, f"  peer: {peer['latency_s']:.3f} s ({row['speedup']:.1f}x)")
            rows.append(row)
    meta["load_average_end"] = load_average()
    return {"meta": meta, "rows": rows}


def _log(options: BenchmarkOptions, text: str) -> None:
    if callable(options.log):
        options.log(text)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_table(report: dict) -> str:
    """A fixed-width table of the report, with the run's conditions on top."""
    meta = report["meta"]
    lines = [
        f"{meta['device']}, torch {meta['torch']}, {meta['threads']} threads, {meta['precision']}, "
        f"load {meta['load_average_start']} -> {meta['load_average_end']}; "
        f"matmul {meta['matmul_size']}^3: {meta['matmul_flop_rate'] / 1e9:.0f} GFLOP/s",
        f"{'model':<12} {'K':>4} {'latency s':>9} {'text s':>7} {'img/s':>6} {'peak MiB':>8} "
        f"{'fwd MiB':>7} {'enc GF/s':>8} {'enc/mm':>6} {'peer s':>8} {'speed-up':>8} {'mem x':>6}",
    ]
    mib = 2**20
    for row in report["rows"]:
        peer = row.get("peer")
        enc = row.get("encoder_flop_rate")
        lines.append(
            f"{row['model']:<12} {row['k']:>4} {row['latency_s']:>9.3f} {row.get('text_s', 0):>7.3f} "
            f"{row.get('images_per_s', float('nan')):>6.2f} {row['peak_rss_bytes'] / mib:>8.0f} "
            f"{row['forward_peak_bytes'] / mib:>7.0f} "
            + (
                f"{enc / 1e9:>8.1f} {row['encoder_fraction_of_matmul']:>6.0%} "
                if enc
                else f"{'':>8} {'':>6} "
            )
            + (
                f"{peer['latency_s']:>7.2f}{'*' if peer['extrapolated'] else ' '} {row['speedup']:>7.1f}x "
                f"{row['memory_ratio']:>5.1f}x"
                if peer
                else ""
            )
        )
    peers = sorted({(r["model"], r["peer"]["name"]) for r in report["rows"] if "peer" in r})
    lines += [f"peer of {model}: {name}" for model, name in peers]
    if any(r.get("peer", {}).get("extrapolated") for r in report["rows"]):
        lines.append(
            "* peer timed on fewer prompts and scaled linearly to K (its cost per prompt is constant)"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # one setting in a fresh process: a JSON Setting in, a JSON result out
    print(json.dumps(measure_setting(Setting(**json.loads(sys.argv[1])))))
