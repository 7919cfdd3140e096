"""Write the official-parity fixtures: ``python tools/parity/generate.py CASE --out tests/fixtures/official``.

Run by hand with the official repositories mirrored locally (see docs/parity.md), never in CI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

# case -> module of tools/parity with a generate(out, scratch, seed) function
CASES = {
    "partclipseg_voc": "partclipseg",
    "clipseg_ovparts": "clipseg_ovparts",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/official"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=None, help="folder for extracted repositories")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    module = importlib.import_module(f"tools.parity.{CASES[args.case]}")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="ovparts-parity-"))
    path = module.generate(out, scratch.resolve(), args.seed)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
