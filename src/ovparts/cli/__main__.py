"""``python -m ovparts.cli``: the command line without its console script (subprocess tests run it so)."""

from . import main

main()
