"""Performance measurement of every ovparts model against its peers, in one run (``ovparts benchmark``)."""

from .cases import DEFAULT_CLASSES, MODELS, PEERS, benchmark_vocabulary, build_case
from .runner import (
    BenchmarkOptions,
    Setting,
    format_markdown,
    format_table,
    measure_setting,
    run_benchmark,
)

__all__ = [
    "DEFAULT_CLASSES",
    "MODELS",
    "PEERS",
    "BenchmarkOptions",
    "Setting",
    "benchmark_vocabulary",
    "build_case",
    "format_markdown",
    "format_table",
    "measure_setting",
    "run_benchmark",
]
