"""The built-in segmentation methods, one folder each: ``config.py``, ``model.py``, ``losses.py``,
``convert.py``, ``peers.py`` and an ``__init__.py`` holding the method's one registry entry.

This module stays import-light (no torch): the CLI reads the default method from it while building its
options, and the registry imports the packages listed here when first asked for a method.
"""

# One package per built-in method; importing it registers its entry. A new method adds one line.
BUILTIN_METHODS = (
    "ovparts.methods.clipseg",
    "ovparts.methods.catseg",
    "ovparts.methods.partclipseg",
    "ovparts.methods.partcatseg",
)
# The method `ovparts segment`, `serve` and a training recipe use when none is named.
DEFAULT_MODEL = "clipseg"
