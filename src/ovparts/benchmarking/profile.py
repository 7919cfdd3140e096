"""``ovparts benchmark --profile``: where a cost-aggregation prediction spends its time and FLOPs.

One Segmenter call (one view, no sliding window) on a random image, split into the stages the models mark
with :func:`ovparts.models.stages.stage`. Each stage gets its median exclusive time, its FLOPs (counted by
``FlopCounterMode`` in a separate pass) and its FLOP rate as a fraction of a large matmul's rate measured in
the same process, right before and after the timed runs: the matmul rate is the yardstick the issue states
the head's goal against (stages with few FLOPs, like label assignment, are memory-bound and score low).
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
from PIL import Image

from ..models.stages import OTHER, StageProfile
from ..runtime.precision import PRECISIONS, check_precision
from .cases import benchmark_vocabulary
from .measure import load_average, matmul_rate

STAGES = (
    "image encoder",
    "cost volume",
    "guidance projection",
    "spatial aggregation",
    "class aggregation",
    "decoder",
    "upsampling",
    "label assignment",
    OTHER,
)


def profiled_models() -> tuple[str, ...]:
    """The methods whose registry entry says their prediction is split into stages (``profiled``)."""
    from ..models.registry import model_specs

    return tuple(name for name, spec in model_specs().items() if spec.profiled)


def __getattr__(attribute: str) -> object:
    """``PROFILED_MODELS``, read from the registry when asked for."""
    if attribute == "PROFILED_MODELS":
        return profiled_models()
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def profile_model(
    name: str,
    size: str,
    k: int,
    device: str | torch.device = "cpu",
    repeats: int = 3,
    precision: str = "fp32",
) -> dict:
    """Per-stage time, FLOPs and fraction of the matmul rate of one prediction of ``name`` at K classes.

    Returns ``{"model", "k", "precision", "total_s", "matmul_flop_rate", "load_average", "stages": [...]}``
    with a row per stage of :data:`STAGES` (``seconds`` the median over ``repeats`` runs)."""
    from ..inference import Segmenter
    from ..models.registry import load_model, model_spec

    covered = profiled_models()
    if name not in covered:
        raise ValueError(f"The per-stage profile covers {', '.join(covered)}, not {name!r}.")
    device = torch.device(device)
    check_precision(precision, device)
    torch.manual_seed(0)
    model = load_model(name, config=model_spec(name).sizes.get(size, size), device=str(device))
    vocab = benchmark_vocabulary(k)
    segmenter = Segmenter(model, device=device, sliding_window=False, keep_scores=False, precision=precision)
    side = model.preprocess.size
    pixels = np.random.default_rng(0).integers(0, 256, (side[0], side[1], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    segmenter(image, vocab)  # cold run: text embeddings cached, allocator warm

    with StageProfile(device, count_flops=True) as counted:
        segmenter(image, vocab)
    dtype = PRECISIONS[precision] or torch.float32
    before = matmul_rate(device, 2048, dtype)
    runs = []
    for _ in range(max(1, repeats)):
        with StageProfile(device) as timed:
            segmenter(image, vocab)
        runs.append(timed)
    yardstick = (before + matmul_rate(device, 2048, dtype)) / 2
    rows = []
    for stage_name in STAGES:
        seconds = statistics.median(run.seconds.get(stage_name, 0.0) for run in runs)
        flops = counted.flops.get(stage_name, 0)
        rate = flops / seconds if seconds > 0 else 0.0
        rows.append(
            {
                "stage": stage_name,
                "seconds": seconds,
                "flops": flops,
                "flop_rate": rate,
                "fraction_of_matmul": rate / yardstick,
            }
        )
    return {
        "model": name,
        "k": k,
        "precision": precision,
        "total_s": statistics.median(run.total_seconds for run in runs),
        "total_flops": sum(counted.flops.values()),
        "matmul_flop_rate": yardstick,
        "load_average": load_average(),
        "stages": rows,
    }


def format_profile(profile: dict) -> str:
    """A fixed-width per-stage table with the model, K, precision and yardstick on top."""
    lines = [
        f"{profile['model']} K={profile['k']} {profile['precision']}: {profile['total_s']:.3f} s, "
        f"{profile['total_flops'] / 1e9:.1f} GFLOP; matmul {profile['matmul_flop_rate'] / 1e9:.0f} GFLOP/s; "
        f"load {profile['load_average']}",
        f"{'stage':<20} {'time s':>8} {'share':>6} {'GFLOP':>8} {'GFLOP/s':>8} {'of matmul':>9}",
    ]
    for row in profile["stages"]:
        lines.append(
            f"{row['stage']:<20} {row['seconds']:>8.3f} {row['seconds'] / profile['total_s']:>6.1%} "
            f"{row['flops'] / 1e9:>8.3f} {row['flop_rate'] / 1e9:>8.1f} {row['fraction_of_matmul']:>9.0%}"
        )
    return "\n".join(lines)


def format_profile_markdown(profile: dict) -> str:
    """The per-stage table as Markdown, for docs/performance.md."""
    lines = [
        f"{profile['model']}, K = {profile['k']}, {profile['precision']}: {profile['total_s']:.2f} s, "
        f"{profile['total_flops'] / 1e9:.1f} GFLOP, matmul {profile['matmul_flop_rate'] / 1e9:.0f} GFLOP/s, "
        f"load average {profile['load_average']:.1f}",
        "",
        "| stage | time s | share | GFLOP | GFLOP/s | of matmul |",
        "|---|---|---|---|---|---|",
    ]
    for row in profile["stages"]:
        lines.append(
            f"| {row['stage']} | {row['seconds']:.3f} | {row['seconds'] / profile['total_s']:.0%} "
            f"| {row['flops'] / 1e9:.3f} | {row['flop_rate'] / 1e9:.1f} | {row['fraction_of_matmul']:.0%} |"
        )
    return "\n".join(lines)
