"""Published checkpoints by name: the catalog (``catalog``), transports (``download``) and the cache (``store``).

``ovparts.load_model("partcatseg", weights="pascal_part_116")`` and ``--weights NAME`` go through
:func:`ovparts.weights.store.resolve_name`; ``ovparts weights list | pull | path | rm`` is the CLI.
"""

from .catalog import PublishedWeights, Source, all_published, lookup, require

__all__ = ["PublishedWeights", "Source", "all_published", "lookup", "require"]
