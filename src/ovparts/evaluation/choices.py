"""The named choices of evaluation, one list each; the command line, the checks and the error messages read them.

The averaging rules are the keys of ``rules.RULES`` (name -> function); benchmark names are
``ovparts.vocabulary.BENCHMARKS``. This module imports nothing, so the command line stays fast.
"""

PROTOCOLS = ("oracle_obj", "pred_all", "pred_obj")
"""What the model is told about objects (``protocols.py``); every rule has a branch for each."""

BOUNDARY_MODES = ("auto", "none", "per_class", "d2_compat", "both")
"""``auto`` follows the rule's own habit: per-class boundary IoU for ``ovparts``, PartCLIPSeg's d2-compatible
one for ``partclipseg``, none for the other two."""

STRATEGIES = ("ddp",)
"""Distributed evaluation: one process per device, results back in every rank (not the spawn strategies)."""
