"""`python -m bench`: parse options, run each N, print the figures and write the doc."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from . import report
from .server import DSN_ENV, MACHINE_DSN, describe, server
from .steps import Bench, BenchError, Result, median

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--grants", type=_counts, default=[10_000],
                   help="active grants, comma-separated for several runs (default 10000)")
    p.add_argument("--dsn", help=f"superuser URI (default ${DSN_ENV} or {MACHINE_DSN})")
    p.add_argument("--embedded", action="store_true",
                   help="start an embedded PostgreSQL 18 instead")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help="run each N R times and report the median of each step (default 1)")
    p.add_argument("--verifiers", action="store_true",
                   help="give every grant a SCRAM password verifier (the server then spends a "
                        "PBKDF2 per CREATE ROLE, in psql and apply alike)")
    p.add_argument("--doc", type=Path, default=DOC, help="the markdown file to update")
    p.add_argument("--no-doc", action="store_true", help="print the figures only")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="write DIR/<N>-<step>.pstats (cProfile); implies --no-doc")
    p.add_argument("--keep", action="store_true", help="keep the generated repositories")
    return p.parse_args(argv)


def _counts(text: str) -> list[int]:
    try:
        values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("grant counts must be positive")
    return values  # ascending, so the peak RSS of each run is its own


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanup of the roles


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    results: list[Result] = []
    try:
        with server(args.dsn, args.embedded) as dsn:
            box = report.machine(describe(dsn) + (" (embedded)" if args.embedded else ""))
            for grants in args.grants:
                runs = []
                for run in range(1, max(args.repeat, 1) + 1):
                    print(f"bench: {grants:,} grants on {box.server}, run {run}",
                          file=sys.stderr)
                    runs.append(Bench(dsn, grants, args.verifiers, args.profile,
                                      args.keep).run())
                results.append(median(runs))
    except BenchError as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    generated = report.section(results, box)
    print(generated)
    if not (args.no_doc or args.profile):
        report.write_doc(args.doc, generated)
        print(f"\nbench: wrote {args.doc}", file=sys.stderr)
    return 0
