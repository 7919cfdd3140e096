"""`ovparts benchmark`: every model's latency, throughput, memory and encoder FLOP rate, against peers."""

from __future__ import annotations

import json
from collections.abc import Callable

import click


@click.command()
@click.option("--model", "models", multiple=True, help="Model(s) to measure (repeat); default: all.")
@click.option(
    "--size", default="native", show_default=True, help="'native' (published architecture) or 'tiny'."
)
@click.option(
    "--classes", "classes", multiple=True, type=int, help="Vocabulary sizes K (repeat); default 20 116 234."
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--repeats",
    default=3,
    show_default=True,
    type=int,
    help="Timed runs, in turn with the peers; the median is reported.",
)
@click.option("--batch", default=4, show_default=True, type=int, help="Images per batch for images/s.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="Autocast precision (fp16: CUDA only).",
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile ovparts' models (peers stay eager); the compile time shows in first_call_s.",
)
@click.option("--no-peers", is_flag=True, help="Measure ovparts only.")
@click.option(
    "--peer",
    "peer_names",
    multiple=True,
    help="Run only these peers (repeat), e.g. --peer official; default: every peer of each model.",
)
@click.option(
    "--peer-at", multiple=True, type=int, help="Run peers only at these K (repeat); default: all K."
)
@click.option(
    "--peer-classes",
    type=int,
    help="Time transformers' CLIPSeg on at most this many prompts and scale to K (it is linear in K).",
)
@click.option(
    "--no-text-timing",
    is_flag=True,
    help="Skip timing the vocabulary's encoding from scratch (text_s): minutes for PartCATSeg at K >= 116.",
)
@click.option("--threads", type=int, help="torch threads (default: torch's choice).")
@click.option(
    "--in-process", is_flag=True, help="No worker process per setting (peak RSS then not per setting)."
)
@click.option(
    "--profile",
    is_flag=True,
    help="Per-stage time, FLOPs and fraction of the matmul rate (CAT-Seg and PartCATSeg), no peers.",
)
@click.option("--json", "json_path", help="Also write the report as JSON.")
@click.option("--markdown", "markdown_path", help="Also write a Markdown table.")
def benchmark(
    models: tuple[str, ...],
    size: str,
    classes: tuple[int, ...],
    device: str,
    repeats: int,
    batch: int,
    precision: str,
    compile_: bool,
    no_peers: bool,
    peer_names: tuple[str, ...],
    peer_at: tuple[int, ...],
    peer_classes: int | None,
    no_text_timing: bool,
    threads: int | None,
    in_process: bool,
    profile: bool,
    json_path: str | None,
    markdown_path: str | None,
) -> None:
    """Measure models against their peers in one run and print a table.

    ovparts and each peer run in their own worker processes and are timed in turn, round after round, so
    that both sides of a ratio see the same load: the ratios are the figures to trust on a shared machine.
    Peers: 'transformers' (CLIPSeg), 'reference' (image re-encoded per class, whole cost volume at once)
    and 'official' (the official code's batching; for CAT-Seg and PartCATSeg also its head layout, so the
    ratio is against the official structure). --peer picks some of them.

    With --profile: one prediction of CAT-Seg / PartCATSeg split into stages (image encoder, cost volume,
    guidance projection, spatial and class aggregation, decoder, upsampling, label assignment), each with
    its time, FLOPs and fraction of a matmul's FLOP rate measured in the same process."""
    from ..benchmarking import (
        DEFAULT_CLASSES,
        BenchmarkOptions,
        benchmark_models,
        benchmark_peers,
        format_markdown,
        format_table,
        run_benchmark,
    )
    from ..errors import ConfigError
    from ..output_files import check_output_file
    from ..validation import check_device

    check_device(device)

    for path, option in ((json_path, "--json"), (markdown_path, "--markdown")):
        if path:  # refused now, not after minutes of measuring
            check_output_file(path, option)
    known = benchmark_models()
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ConfigError(f"No benchmark for model {unknown[0]!r}; choose from {', '.join(known)}.")
    offered = {peer for m in models or known for peer in benchmark_peers(m)}
    missing = [p for p in peer_names if p not in offered]
    if missing:
        raise ConfigError(
            f"No model measured here has a peer {missing[0]!r}; their peers: {', '.join(sorted(offered))}."
        )
    if any(k < 1 for k in classes) or repeats < 1 or batch < 1:
        raise ConfigError("--classes, --repeats and --batch must be positive.")
    if profile:
        from ..benchmarking.profile import format_profile_markdown

        profiles = _profile(models, size, classes or DEFAULT_CLASSES, device, repeats, precision, threads)
        _write_results(
            profiles, json_path, markdown_path, lambda: "\n\n".join(map(format_profile_markdown, profiles))
        )
        return
    options = BenchmarkOptions(
        models=models or known,
        classes=classes or DEFAULT_CLASSES,
        size=size,
        device=device,
        repeats=repeats,
        batch=batch,
        precision=precision,
        peers=not no_peers,
        peer_at=peer_at or None,
        peer_names=peer_names or None,
        peer_classes=peer_classes,
        isolate=not in_process,
        threads=threads,
        compile=compile_,
        text_timing=not no_text_timing,
        log=lambda text: click.echo(text, err=True),
    )
    report = run_benchmark(options)
    click.echo(format_table(report))
    _write_results(report, json_path, markdown_path, lambda: format_markdown(report))


def _profile(
    models: tuple[str, ...],
    size: str,
    classes: tuple[int, ...],
    device: str,
    repeats: int,
    precision: str,
    threads: int | None,
) -> list[dict]:
    """Print a per-stage table per (model, K); returns them for --json / --markdown."""
    import torch

    from ..benchmarking.profile import format_profile, profile_model, profiled_models
    from ..errors import ConfigError
    from ..runtime.precision import describe_precision_support

    covered = profiled_models()
    other = [m for m in models if m not in covered]
    if other:
        raise ConfigError(
            f"--profile covers {' and '.join(covered)} (the cost-aggregation heads), not {other[0]!r}."
        )
    if threads:
        torch.set_num_threads(threads)
    click.echo(describe_precision_support(device, precision))
    profiles = []
    for model in models or covered:
        for k in classes:
            result = profile_model(model, size, k, device, repeats, precision)
            profiles.append(result)
            click.echo(format_profile(result))
    return profiles


def _write_results(
    data: object, json_path: str | None, markdown_path: str | None, markdown: Callable[[], str]
) -> None:
    """``--json`` and ``--markdown``, each written atomically (a killed run never leaves half a table)."""
    from ..output_files import write_text

    if json_path:
        write_text(json_path, json.dumps(data, indent=2), "--json")
    if markdown_path:
        write_text(markdown_path, markdown() + "\n", "--markdown")
