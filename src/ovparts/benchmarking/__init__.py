"""Performance measurement of every ovparts model against its peers, in one run (``ovparts benchmark``)."""

from typing import Any

from . import cases
from .cases import DEFAULT_CLASSES, benchmark_models, benchmark_peers, benchmark_vocabulary, build_case
from .runner import (
    BenchmarkOptions,
    Setting,
    format_markdown,
    format_table,
    measure_setting,
    run_benchmark,
)


def __getattr__(attribute: str) -> Any:
    """``MODELS`` and ``PEERS``, read from the registry when asked for (see ``cases``)."""
    if attribute in ("MODELS", "PEERS"):
        return getattr(cases, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


__all__ = [
    "DEFAULT_CLASSES",
    "MODELS",
    "PEERS",
    "BenchmarkOptions",
    "Setting",
    "benchmark_vocabulary",
    "benchmark_models",
    "benchmark_peers",
    "build_case",
    "format_markdown",
    "format_table",
    "measure_setting",
    "run_benchmark",
]
