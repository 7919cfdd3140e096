"""The one place that calls a method's converter for a published checkpoint.

Today each method has its own converter function; when the converters share one API this table becomes a
registry lookup, and nothing else in ``ovparts.weights`` changes.
"""

from __future__ import annotations

from pathlib import Path

from .catalog import PublishedWeights


def convert_published(entry: PublishedWeights, raw: Path, out: Path, tokenizer: str | None = None) -> None:
    """Convert the raw official file ``raw`` of ``entry`` into the new folder ``out`` with the tokenizer files
    in ``tokenizer`` (a folder; default: the entry's own tokenizer, a folder or hub id)."""
    tokenizer = tokenizer or entry.tokenizer
    options = dict(entry.convert)
    if entry.method == "catseg":
        from ..methods.catseg.convert import convert_catseg_checkpoint

        convert_catseg_checkpoint(raw, out, tokenizer=tokenizer, **options)
    elif entry.method == "partcatseg":
        from ..methods.partcatseg.convert import convert_partcatseg_checkpoint

        convert_partcatseg_checkpoint(raw, out, tokenizer=tokenizer, **options)
    elif entry.method in ("clipseg", "partclipseg"):
        from importlib import import_module

        module = import_module(f"ovparts.methods.{entry.method}.convert")
        configs = import_module(f"ovparts.methods.{entry.method}.model").CONFIGS
        base = configs[options.pop("base_config", "default")]
        conversion = module.convert_state_dict(module.read_official_checkpoint(raw), base, **options)
        module.write_checkpoint(conversion, out, tokenizer)
    else:
        raise ValueError(f"No converter for {entry.method!r}.")
