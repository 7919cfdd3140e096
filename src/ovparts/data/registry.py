"""Benchmark names -> readers, download facts and layout checks (what ``ovparts data`` prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from ..vocabulary import BENCHMARKS, benchmark_table
from .ade import ADE20KPart234
from .base import BenchmarkReader, missing_layout, resolve_root
from .partimagenet import PartImageNet, PartImageNetOOD
from .pascal import PascalPart116

_BY_NAME = {
    reader.benchmark: reader for reader in (PascalPart116, ADE20KPart234, PartImageNet, PartImageNetOOD)
}
READERS: dict[str, type[BenchmarkReader]] = {name: _BY_NAME[name] for name in BENCHMARKS}
"""Each benchmark's reader, in the order of ``ovparts.vocabulary.BENCHMARKS`` (the one list of names)."""

# Facts from the official READMEs; printed by `ovparts data info`.
DOWNLOADS: dict[str, list[str]] = {
    "pascal_part_116": [
        "OV-PARTS: https://drive.google.com/file/d/1f5kqrM2_iK_bWmQBW3rdSnGrnke4PUbX/view?usp=sharing",
        "PartCLIPSeg/PartCATSeg: gdown https://drive.google.com/uc?id=1QF0BglrcC0teKqx15vP8qJNakGgCWaEH",
        "then: tar -xzf PascalPart116.tar.gz  (macOS '._*' files are ignored by ovparts)",
    ],
    "ade20k_part_234": [
        "https://drive.google.com/file/d/1EBVPW_tqzBOQ_DC6yLcouyxR7WrctRKi/view",
        "then: tar -xzf ADE20KPart234.tar.gz  (no preprocessing needed)",
    ],
    "partimagenet": [
        "https://huggingface.co/datasets/turkeyju/PartImageNet/blob/main/PartImageNet_Seg.zip",
        "unzip into PartImageNet/; train.json/val.json may stay in annotations/{train,val}/ or sit at the root;",
        "ovparts filters the 40-object subset in memory: do NOT run partimagenet_preprocess.py (it deletes files)",
    ],
    "partimagenet_ood": [
        "https://huggingface.co/datasets/turkeyju/PartImageNet/blob/main/PartImageNet_OOD.zip",
        "unzip into PartImageNet_OOD/ with train.json and val.json at the root; ovparts also finds images",
        "left in per-class subfolders if the file name in the JSON includes them",
    ],
}

NAME_ALIASES = {
    "pascal": "pascal_part_116",
    "pascalpart116": "pascal_part_116",
    "voc": "pascal_part_116",
    "ade": "ade20k_part_234",
    "ade20k": "ade20k_part_234",
    "ade20kpart234": "ade20k_part_234",
    "pin": "partimagenet",
    "partimagenet_ood": "partimagenet_ood",
}


def canonical_name(name: str) -> str:
    """``"Pascal-Part-116"``, ``"pascal"`` or ``"pascal_part_116"`` -> ``"pascal_part_116"``."""
    key = name.lower().replace("-", "_").strip()
    key = NAME_ALIASES.get(key.replace("_", ""), NAME_ALIASES.get(key, key))
    if key not in READERS:
        raise DatasetError(f"Unknown dataset {name!r}; choose from {', '.join(BENCHMARKS)}.")
    return key


def load_dataset(name: str, root: str | Path, split: str = "val", strict: bool = False) -> BenchmarkReader:
    """A reader for a benchmark on disk; scans the layout now, decodes label maps while iterating."""
    return READERS[canonical_name(name)](root, split=split, strict=strict)


def info_text(name: str) -> str:
    """What ``ovparts data info NAME`` prints: classes, split, ignore value, downloads and layout."""
    key = canonical_name(name)
    reader = READERS[key]
    table = benchmark_table(key)
    lines = [
        f"{table['name']}  ({key})",
        f"  objects: {table['num_object_classes']}   parts: {table['num_classes']} "
        f"(seen {table['num_seen_classes']}, unseen {table['num_unseen_classes']})",
        f"  unseen objects: {', '.join(table['unseen_object_classes'])}",
        f"  ignore value on disk: {table['ignore_label']}   evaluation record: {reader.record_unit}",
        "",
        "Download:",
        *(f"  {line}" for line in DOWNLOADS[key]),
        "",
        f"Expected layout (pass the folder that contains {reader.dirname}/, or {reader.dirname}/ itself):",
        f"  {reader.dirname}/",
        *(f"    {entry.path:<40} {entry.what} [{'/'.join(entry.splits)}]" for entry in reader.layout),
    ]
    return "\n".join(lines)


@dataclass
class CheckResult:
    """Outcome of ``ovparts data check``: missing paths, per-split counts and bad files."""

    dataset: str
    root: Path
    missing: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bad_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad_files

    def text(self) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        lines += [f"  MISSING {m}" for m in self.missing]
        for split, counts in self.counts.items():
            lines.append(f"  {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines += [f"  BAD {b}" for b in self.bad_files[:50]]
        if len(self.bad_files) > 50:
            lines.append(f"  ... and {len(self.bad_files) - 50} more bad files")
        lines.append("  OK" if self.ok else "  PROBLEMS FOUND")
        return "\n".join(lines)


def check_dataset(
    name: str, root: str | Path, splits: tuple[str, ...] = ("val",), deep: bool = False
) -> CheckResult:
    """Validate a layout: required paths, image/label pairing, and with ``deep`` every label file's content."""
    key = canonical_name(name)
    reader_cls = READERS[key]
    resolved = resolve_root(Path(root), reader_cls.dirname)
    result = CheckResult(key, resolved)
    for split in splits:
        missing = missing_layout(resolved, reader_cls.layout, split)
        result.missing += [f"{m} [{split}]" for m in missing if f"{m} [{split}]" not in result.missing]
        if missing:
            continue
        try:
            reader = reader_cls(resolved, split=split)
        except DatasetError as exc:
            result.bad_files.append(str(exc))
            continue
        counts = {"images": len(reader)}
        if deep:
            samples = list(reader)
            counts["records"] = sum(len(s.regions) for s in samples)
            counts["records without part labels"] = reader.skips.counts().get("no_part_labels", 0)
        result.bad_files += [f"{s.path}: {s.reason}" for s in reader.skips.errors]
        result.counts[split] = counts
    return result
