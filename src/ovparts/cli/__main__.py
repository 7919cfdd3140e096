"""``python -m ovparts.cli``: the ``ovparts`` command without its console script (subprocess tests, launchers)."""

from . import main

main()
