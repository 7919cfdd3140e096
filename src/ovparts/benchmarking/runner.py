"""Run the benchmark: one worker process per setting (model, K, variant), timed in alternation, a table.

A process per setting is what makes CPU peak memory mean something: ``ru_maxrss`` only grows, so a process
that built three models cannot say which one needed the memory. The workers stay alive while the runner
times ovparts and its peers in turn, so both sides see the same load. ``isolate=False`` runs everything in
this process instead (tests, quick looks); then only the sampled per-forward peak is meaningful.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace

import torch

from ..runtime.precision import PRECISIONS, autocast, check_precision, describe_precision_support
from .cases import DEFAULT_CLASSES, benchmark_models, benchmark_peers, build_case
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
    compile: bool = False
    text_timing: bool = True


class Measurement:
    """One setting, live: the case built and its cold run done, ready to be timed one run at a time.

    Timing runs one at a time lets the runner alternate ovparts and its peers (ours, peer, ours, peer...),
    so that a change of load on a shared machine hits both sides alike instead of moving their ratio.
    """

    def __init__(self, setting: Setting) -> None:
        if setting.threads:
            torch.set_num_threads(setting.threads)
        self.setting = setting
        self.device = torch.device(setting.device)
        self.case = build_case(
            setting.model,
            setting.size,
            setting.k,
            self.device,
            setting.variant,
            setting.peer_classes,
            setting.compile,
        )
        generator = torch.Generator().manual_seed(1)
        self.pixels = torch.randn(1, 3, *self.case.image_size, generator=generator).to(self.device)
        with self._context(), PeakMemory(self.device) as peak:
            # the cold run: fills the text cache (and compiles, with --compile), and is the warm-up
            self.first_call_s = median_seconds(lambda: self.case.forward(self.pixels), 1, self.device, 0)
        self.forward_peak_bytes = peak.peak

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast(self.device, self.setting.precision))
        return stack

    def time_once(self) -> float:
        """Seconds of one more forward (the per-image cost, text cached)."""
        with self._context():
            return median_seconds(lambda: self.case.forward(self.pixels), 1, self.device, warmup=0)

    def finish(self, times: list[float]) -> dict:
        """The setting's result from its timed runs, plus (ovparts) text cost, throughput and FLOP rate."""
        setting, case, device, pixels = self.setting, self.case, self.device, self.pixels
        result: dict = {
            "variant": setting.variant,
            "image_size": list(case.image_size),
            "latency_s": statistics.median(times) * case.scale,
            "times_s": [t * case.scale for t in times],
            "first_call_s": self.first_call_s * case.scale,
            "forward_peak_bytes": self.forward_peak_bytes,
            "peak_rss_bytes": max_rss_bytes(),
            "classes_measured": case.classes_measured or setting.k,
            "extrapolated": case.scale != 1.0,
        }
        with self._context():
            if case.text is not None and setting.text_timing:
                result["text_s"] = median_seconds(case.text, 1, device, warmup=0)
            if setting.variant == "ovparts" and setting.batch > 1:
                batch = pixels.repeat(setting.batch, 1, 1, 1)
                batch_s = median_seconds(lambda: case.forward(batch), setting.repeats, device, warmup=1)
                result.update(batch=setting.batch, images_per_s=setting.batch / batch_s)
            if setting.encoder and case.encoder is not None:
                result.update(self._encoder_rate())
        result["load_average"] = load_average()
        if device.type == "cuda":
            result["peak_device_bytes"] = torch.cuda.max_memory_allocated(device)
        return result

    def _encoder_rate(self) -> dict:
        # The yardstick is measured right around the encoder, in this process: the load on a shared
        # machine changes within minutes, so a rate from the start of the run would not compare.
        setting, device, encoder = self.setting, self.device, self.case.encoder
        dtype = PRECISIONS[setting.precision] or torch.float32
        before = matmul_rate(device, 2048, dtype)
        flops = count_flops(lambda: encoder(self.pixels))
        encoder_s = median_seconds(lambda: encoder(self.pixels), setting.repeats, device, warmup=1)
        yardstick = (before + matmul_rate(device, 2048, dtype)) / 2
        return {
            "encoder_flops": flops,
            "encoder_s": encoder_s,
            "encoder_flop_rate": flops / encoder_s,
            "matmul_flop_rate": yardstick,
            "encoder_fraction_of_matmul": flops / encoder_s / yardstick,
        }


def measure_setting(setting: Setting) -> dict:
    """Latency, memory (and for ovparts: text cost, batched throughput, encoder FLOP rate) of one setting."""
    measurement = Measurement(setting)
    return measurement.finish([measurement.time_once() for _ in range(max(1, setting.repeats))])


_REPLY = "@ovparts-benchmark "  # marks the worker's replies among anything a library prints to stdout


class ProcessWorker:
    """A setting measured in its own long-lived process, driven one command at a time over a pipe.

    Its own process makes its peak RSS its own; staying alive between commands lets the runner alternate
    timed runs between ovparts and its peers.
    """

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        # held open for the worker's whole life, closed by finish() or close()
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        command = [sys.executable, "-m", "ovparts.benchmarking.runner", json.dumps(asdict(setting))]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self._reply()  # ready: the model is built and its cold run done

    def _reply(self) -> dict:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY) :])
        self.process.wait()
        self.stderr.seek(0)
        raise RuntimeError(f"The benchmark of {self.setting} failed:\n{self.stderr.read()[-3000:]}")

    def _ask(self, command: dict) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def time_once(self) -> float:
        return self._ask({"command": "time"})["seconds"]

    def finish(self, times: list[float]) -> dict:
        result = self._ask({"command": "finish", "times": times})
        self.process.wait()
        self.stderr.close()
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


def _serve(setting: Setting) -> None:
    """The worker's side of :class:`ProcessWorker`: build, report ready, then answer commands."""

    def reply(payload: dict) -> None:
        print(_REPLY + json.dumps(payload), flush=True)

    measurement = Measurement(setting)
    reply({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        if command["command"] == "time":
            reply({"seconds": measurement.time_once()})
        elif command["command"] == "finish":
            reply(measurement.finish(command["times"]))
            return


@dataclass
class BenchmarkOptions:
    models: tuple[str, ...] = field(default_factory=benchmark_models)
    classes: tuple[int, ...] = DEFAULT_CLASSES
    size: str = "native"
    device: str = "cpu"
    repeats: int = 3
    batch: int = 4
    precision: str = "fp32"
    peers: bool = True
    peer_at: tuple[int, ...] | None = None  # the K values at which peers run (None: every K)
    peer_names: tuple[str, ...] | None = None  # the peers to run, by variant name (None: all of a model's)
    peer_classes: int | None = None  # cap on the prompts a per-prompt peer runs (then scaled to K)
    isolate: bool = True
    threads: int | None = None
    compile: bool = False
    text_timing: bool = True  # time the vocabulary's encoding from scratch (minutes for PartCATSeg)
    log: object = field(default=None, repr=False)


def run_benchmark(options: BenchmarkOptions) -> dict:
    """Every (model, K): ovparts and its peers timed in alternation; ratios peer / ovparts."""
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
        "precision_support": describe_precision_support(device, options.precision),
        "compiled": options.compile,
        "size": options.size,
        "isolated_processes": options.isolate,
        "timing": "alternating",
        "load_average_start": load_average(),
        "matmul_size": 2048,
        "matmul_flop_rate": matmul_rate(device, 2048, dtype),
    }
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
                compile=options.compile,
                text_timing=options.text_timing,
            )
            with_peers = options.peers and (options.peer_at is None or k in options.peer_at)
            peers = [p for p in benchmark_peers(model) if not options.peer_names or p in options.peer_names]
            variants = ["ovparts", *(peers if with_peers else ())]
            settings = {
                v: replace(base, variant=v, encoder=base.encoder and v == "ovparts") for v in variants
            }
            if options.precision != "fp32":  # the same model in fp32, timed in the same rounds
                settings[FP32_BASELINE] = replace(base, precision="fp32", encoder=False, batch=1)
            results = _measure_alternating(settings, options)
            row = {"model": model, "k": k, **results.pop("ovparts")}
            _log(options, f"{model} K={k}: {row['latency_s']:.3f} s")
            if FP32_BASELINE in results:
                row[FP32_BASELINE] = _compare_fp32(results.pop(FP32_BASELINE), row, options)
            if results:
                row["peers"] = {v: _compare(model, v, peer, row, options) for v, peer in results.items()}
            rows.append(row)
    meta["load_average_end"] = load_average()
    return {"meta": meta, "rows": rows}


def _measure_alternating(settings: dict[str, Setting], options: BenchmarkOptions) -> dict[str, dict]:
    """Start a worker per variant (cold runs one after the other), then time them in turn, round by round."""
    # in-process (isolate=False), a Measurement is its own worker: same time_once / finish interface
    worker_class = ProcessWorker if options.isolate else Measurement
    workers: dict[str, ProcessWorker | Measurement] = {}
    try:
        for variant, setting in settings.items():
            workers[variant] = worker_class(setting)
        times: dict[str, list[float]] = {variant: [] for variant in workers}
        for _ in range(max(1, options.repeats)):
            for variant, worker in workers.items():
                times[variant].append(worker.time_once())
        # peers first: they exit and free their memory before ovparts' batched and encoder runs
        order = [v for v in workers if v != "ovparts"] + ["ovparts"]
        return {variant: workers.pop(variant).finish(times[variant]) for variant in order}
    finally:
        for worker in workers.values():
            if isinstance(worker, ProcessWorker):
                worker.close()


FP32_BASELINE = "fp32"  # the key of the fp32 run beside a reduced-precision one


def _compare_fp32(fp32: dict, row: dict, options: BenchmarkOptions) -> dict:
    """ovparts in fp32 against ovparts in the reduced precision, from the same alternating rounds."""
    rounds = [f / o for f, o in zip(fp32["times_s"], row["times_s"], strict=True)]
    result = {
        "latency_s": fp32["latency_s"],
        "times_s": fp32["times_s"],
        "speedup": fp32["latency_s"] / row["latency_s"],
        "speedup_rounds": statistics.median(rounds),
    }
    _log(options, f"  fp32: {fp32['latency_s']:.3f} s ({result['speedup']:.2f}x from {options.precision})")
    return result


def _compare(model: str, variant: str, peer: dict, row: dict, options: BenchmarkOptions) -> dict:
    """The peer's result with its ratios to ovparts: per-image speed-up (also counting ovparts' one-time
    text encoding), the median of the round-by-round ratios, and forward memory."""
    rounds = [p / o for p, o in zip(peer["times_s"], row["times_s"], strict=True)]
    # A peer that caches its text embeddings pays the same one-time text encoding as ovparts (same encoder,
    # same prompts); a ``text_per_call`` peer encodes its prompts inside every call, already in its latency.
    text = row.get("text_s")  # absent with --no-text-timing: then no ratio with text either
    described = benchmark_peers(model)[variant]
    peer.update(
        name=described.description,
        speedup=peer["latency_s"] / row["latency_s"],
        speedup_rounds=statistics.median(rounds),
        memory_ratio=peer["forward_peak_bytes"] / max(row["forward_peak_bytes"], 1),
    )
    if text is not None:
        peer_text = 0.0 if described.text_per_call else text
        peer["speedup_incl_text"] = (peer["latency_s"] + peer_text) / (row["latency_s"] + text)
    _log(options, f"  {variant}: {peer['latency_s']:.3f} s ({peer['speedup']:.2f}x)")
    return peer


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


def _text_s(row: dict, width: int, digits: int) -> str:
    """The text-encoding column: "-" where it was not timed (--no-text-timing), not a misleading 0."""
    text = row.get("text_s")
    return f"{'-':>{width}}" if text is None else f"{text:>{width}.{digits}f}"


def format_table(report: dict) -> str:
    """A fixed-width table of the report, with the run's conditions on top and a line per peer."""
    meta = report["meta"]
    lines = [
        f"{meta['device']}, torch {meta['torch']}, {meta['threads']} threads, {meta['precision']}"
        f"{' compiled' if meta.get('compiled') else ''}, "
        f"load {meta['load_average_start']} -> {meta['load_average_end']}; "
        f"matmul {meta['matmul_size']}^3: {meta['matmul_flop_rate'] / 1e9:.0f} GFLOP/s",
        f"{'model':<12} {'K':>4} {'latency s':>9} {'text s':>7} {'img/s':>6} {'peak MiB':>8} "
        f"{'fwd MiB':>7} {'enc GF/s':>8} {'enc/mm':>6}",
    ]
    mib = 2**20
    extrapolated = False
    for row in report["rows"]:
        enc = row.get("encoder_flop_rate")
        lines.append(
            f"{row['model']:<12} {row['k']:>4} {row['latency_s']:>9.3f} {_text_s(row, 7, 3)} "
            f"{row.get('images_per_s', float('nan')):>6.2f} {row['peak_rss_bytes'] / mib:>8.0f} "
            f"{row['forward_peak_bytes'] / mib:>7.0f}"
            + (f" {enc / 1e9:>8.1f} {row['encoder_fraction_of_matmul']:>6.0%}" if enc else "")
        )
        fp32 = row.get(FP32_BASELINE)
        if fp32:
            lines.append(
                f"{'':<12} vs fp32         {fp32['latency_s']:>8.2f} s   {meta['precision']} speed-up "
                f"{fp32['speedup']:.2f}x (by round {fp32['speedup_rounds']:.2f}x)"
            )
        for variant, peer in row.get("peers", {}).items():
            extrapolated |= peer["extrapolated"]
            lines.append(
                f"{'':<12} vs {variant:<12} {peer['latency_s']:>8.2f} s{'*' if peer['extrapolated'] else ''}"
                f"  speed-up {peer['speedup']:.2f}x (by round {peer['speedup_rounds']:.2f}x"
                + (f", with text {peer['speedup_incl_text']:.2f}x" if "speedup_incl_text" in peer else "")
                + f")  peak {peer['peak_rss_bytes'] / mib:.0f} MiB"
                f"  fwd memory {peer['memory_ratio']:.1f}x"
            )
    peers = sorted(
        {(r["model"], v, p["name"]) for r in report["rows"] for v, p in r.get("peers", {}).items()}
    )
    lines += [f"{model} {variant}: {name}" for model, variant, name in peers]
    if meta.get("precision_support"):
        lines.append(meta["precision_support"])
    if extrapolated:
        lines.append(
            "* peer timed on fewer prompts and scaled linearly to K (its cost per prompt is constant)"
        )
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    """The report as a Markdown table (a row per model and K, a row per peer below it), for docs and PRs."""
    meta = report["meta"]
    mib = 2**20
    lines = [
        f"{meta['device']}, torch {meta['torch']}, {meta['threads']} threads, {meta['precision']}"
        f"{', compiled' if meta.get('compiled') else ''}, load average {meta['load_average_start']:.1f} -> "
        f"{meta['load_average_end']:.1f}",
        "",
        "| model | K | vs | latency s | speed-up (by round) | text s | img/s | peak RSS MiB | forward +MiB "
        "| encoder / matmul |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        fraction = row.get("encoder_fraction_of_matmul")
        images = row.get("images_per_s")
        lines.append(
            f"| {row['model']} | {row['k']} | ovparts | {row['latency_s']:.2f} | | {_text_s(row, 0, 2)} "
            f"| {'' if images is None else f'{images:.2f}'} | {row['peak_rss_bytes'] / mib:.0f} "
            f"| {row['forward_peak_bytes'] / mib:.0f} | {'' if fraction is None else f'{fraction:.0%}'} |"
        )
        fp32 = row.get(FP32_BASELINE)
        if fp32:
            lines.append(
                f"| | | fp32 | {fp32['latency_s']:.2f} | {fp32['speedup']:.2f}x ({fp32['speedup_rounds']:.2f}x) "
                "| | | | | |"
            )
        for variant, peer in row.get("peers", {}).items():
            scaled = f" ({peer['classes_measured']} classes, scaled)" if peer["extrapolated"] else ""
            lines.append(
                f"| | | {variant} | {peer['latency_s']:.2f}{scaled} | {peer['speedup']:.2f}x "
                f"({peer['speedup_rounds']:.2f}x) | | | {peer['peak_rss_bytes'] / mib:.0f} "
                f"| {peer['forward_peak_bytes'] / mib:.0f} | |"
            )
    return "\n".join(lines)


if __name__ == "__main__":  # a ProcessWorker: a JSON Setting as argument, commands on stdin
    _serve(Setting(**json.loads(sys.argv[1])))
