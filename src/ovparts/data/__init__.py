"""Benchmark readers (Pascal-Part-116, ADE20K-Part-234, PartImageNet, PartImageNet_OOD) and synthetic data.

>>> from ovparts.data import load_dataset
>>> dataset = load_dataset("pascal_part_116", "datasets", split="val")   # doctest: +SKIP
>>> for sample in dataset: ...                                         # doctest: +SKIP
"""

from .ade import ADE20KPart234
from .base import BenchmarkReader
from .partimagenet import PartImageNet, PartImageNetOOD
from .pascal import PascalPart116
from .records import IGNORE, EvalDataset, InMemoryDataset, Region, Sample, Skip, SkipLog
from .registry import READERS, CheckResult, canonical_name, check_dataset, info_text, load_dataset
from .synthetic import write_synthetic

__all__ = [
    "IGNORE",
    "READERS",
    "ADE20KPart234",
    "BenchmarkReader",
    "CheckResult",
    "EvalDataset",
    "InMemoryDataset",
    "PartImageNet",
    "PartImageNetOOD",
    "PascalPart116",
    "Region",
    "Sample",
    "Skip",
    "SkipLog",
    "canonical_name",
    "check_dataset",
    "info_text",
    "load_dataset",
    "write_synthetic",
]
