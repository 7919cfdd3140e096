"""The one place that calls a method's converter for a published checkpoint: the shared converter API."""

from __future__ import annotations

from pathlib import Path

from ..convert import convert_checkpoint
from .catalog import PublishedWeights


def convert_published(entry: PublishedWeights, raw: Path, out: Path, tokenizer: str | None = None) -> None:
    """Convert the raw official file ``raw`` of ``entry`` into the new folder ``out`` with the tokenizer files
    in ``tokenizer`` (a folder; default: the entry's own tokenizer, a folder or hub id)."""
    convert_checkpoint(entry.method, raw, out, tokenizer=tokenizer or entry.tokenizer, **dict(entry.convert))
