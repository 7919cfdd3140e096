"""Generate an official parity fixture by hand: ``python tools/parity/generate.py CASE --out DIR``.

Runs the official code (extracted from the local mirrors at run time) in a separate
environment; never run in CI. See docs/parity.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.parity import catseg, clipseg_ovparts, partcatseg, partclipseg  # noqa: E402

CASES = {
    **{name: catseg.generate for name in catseg.RELEASES},
    "partcatseg_voc": partcatseg.generate,
    "partclipseg_voc": partclipseg.generate,
    "clipseg_ovparts": clipseg_ovparts.generate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/official"))
    parser.add_argument("--scratch", type=Path, default=None, help="extraction folder (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--diagnostic-fp32-text",
        action="store_true",
        help="compute the official text features with an fp32 CLIP (not the official run; for diagnosis only)",
    )
    args = parser.parse_args(argv)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="ovparts-parity-"))
    scratch.mkdir(parents=True, exist_ok=True)
    info = CASES[args.case](args.case, args.out, scratch, seed=args.seed, fp32_text=args.diagnostic_fp32_text)
    print(f"{args.case}: written to {args.out / args.case}; spread {info['spread']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
