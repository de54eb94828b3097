"""`python -m bench`: parse options, run each N, print the figures and write the doc."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from . import ldap2pg, mysql_report, mysql_server, plot, report
from .ldap2pg import Ldap2pg
from .mysql_steps import MysqlBench
from .server import DSN_ENV, MACHINE_DSN, describe, server
from .steps import Bench, BenchError, Result, median

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Mode:
    """What differs between the engines: the server, the steps and the doc's section."""

    server: Callable[[argparse.Namespace], AbstractContextManager[str]]
    machine: Callable[[str, argparse.Namespace], report.Machine]
    bench: type[Bench]
    section: Callable[[Sequence[Result], report.Machine, str | None], str]
    write: Callable[[Path, str], None]
    grants: int  # the default N
    plotted: bool = False  # postgres: measures ldap2pg too and draws the .svg beside the doc


MODES = {
    "postgres": Mode(
        server=lambda a: server(a.dsn, a.embedded),
        machine=lambda dsn, a: report.machine(describe(dsn)
                                              + (" (embedded)" if a.embedded else "")),
        bench=Bench, section=lambda rs, box, picture: report.section(rs, box, picture=picture),
        write=report.write_doc, grants=10_000, plotted=True),
    "mysql": Mode(
        server=lambda a: nullcontext(mysql_server.resolve(a.dsn)),
        machine=lambda dsn, a: mysql_report.describe_machine(dsn),
        bench=MysqlBench, section=lambda rs, box, picture: mysql_report.section(rs, box),
        write=mysql_report.write,
        grants=2_000),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--engine", choices=sorted(MODES), default="postgres",
                   help="the kind of target (default postgres)")
    p.add_argument("--grants", type=_counts,
                   help="active grants, comma-separated for several runs (default 10000 for "
                        "postgres, 2000 for mysql)")
    p.add_argument("--dsn", help=f"superuser URI (default ${DSN_ENV} or {MACHINE_DSN}; for "
                                 f"mysql ${mysql_server.DSN_ENV} or {mysql_server.MACHINE_DSN})")
    p.add_argument("--embedded", action="store_true",
                   help="start an embedded PostgreSQL 18 instead")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help="run each N R times and report the median of each step (default 1)")
    p.add_argument("--verifiers", action="store_true",
                   help="give every grant a SCRAM password verifier (the server then spends a "
                        "PBKDF2 per CREATE ROLE, in psql and apply alike); mysql grants always "
                        "carry a verifier")
    p.add_argument("--doc", type=Path, default=DOC, help="the markdown file to update")
    p.add_argument("--no-doc", action="store_true", help="print the figures only")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="write DIR/<N>-<step>.pstats (mysql-<N>-<step>.pstats for mysql; "
                        "cProfile); implies --no-doc")
    p.add_argument("--keep", action="store_true", help="keep the generated repositories")
    p.add_argument("--no-ldap2pg", action="store_true",
                   help=f"skip ldap2pg {ldap2pg.VERSION} (postgres: otherwise installed from PyPI "
                        f"into a virtualenv under the cache folder on first use)")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help=f"where ldap2pg's virtualenv lives (default ${ldap2pg.CACHE_ENV} or "
                        f"{ldap2pg.cache_dir()})")
    args = p.parse_args(argv)
    if args.engine == "mysql" and (args.embedded or args.verifiers):
        p.error("--embedded and --verifiers are for --engine postgres")
    args.grants = args.grants or [MODES[args.engine].grants]
    return args


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
    mode = MODES[args.engine]
    signal.signal(signal.SIGTERM, _terminate)
    results: list[Result] = []
    tool: Ldap2pg | None = None
    if mode.plotted and not args.no_ldap2pg:
        tool = ldap2pg.install(args.cache)
        if tool.missing:
            print(f"bench: no ldap2pg figures: {tool.missing}", file=sys.stderr)
    try:
        with mode.server(args) as dsn:
            box = mode.machine(dsn, args)
            for grants in args.grants:
                runs = []
                for run in range(1, max(args.repeat, 1) + 1):
                    print(f"bench: {grants:,} grants on {box.server}, run {run}",
                          file=sys.stderr)
                    runs.append(mode.bench(dsn, grants, args.verifiers, args.profile,
                                           args.keep, tool).run())
                results.append(median(runs))
    except BenchError as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    picture = args.doc.with_suffix(".svg") if mode.plotted else None
    generated = mode.section(results, box, picture.name if picture else None)
    print(generated)
    if not (args.no_doc or args.profile):
        mode.write(args.doc, generated)
        print(f"\nbench: wrote {args.doc}", file=sys.stderr)
        if picture:
            server = box.server.split(" (")[0]  # PostgreSQL 15.x
            picture.write_text(plot.svg(results, f"Seconds per run against active grants, "
                                                 f"one {server} target"))
            print(f"bench: wrote {picture}", file=sys.stderr)
    return 0
