"""`python -m bench.many_targets`: the wall time of `jitgrant apply` and `jitgrant plan` when
nothing is to be done (every login in sync) over 200 targets × 50 grants, beside 1 target ×
10,000 grants (the same number of grants), on one PostgreSQL server.

By default the server is a throwaway PostgreSQL 15 cluster started with max_connections = 100
(fewer connections than targets, as in the issue that asked for --jobs); --dsn names another
(a superuser URI). Each command runs as the installed `jitgrant` would, in a process of its
own, `--repeat` times; the median is printed. The roles made are dropped at the end."""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from psycopg import sql

from reconciler.credentials import new_password
from reconciler.embedded import EmbeddedPostgres
from reconciler.parallel import cores
from reconciler.timeutil import iso

from .repo import IDENTITY, commit_files
from .server import connect, describe

PG15_BIN = Path("/usr/lib/postgresql/15/bin")


class Fleet:
    """`targets` targets on one server, each its own role prefix and DSN variable, and
    `per_target` people granted on every one of them."""

    def __init__(self, dsn: str, targets: int, per_target: int) -> None:
        self.dsn, self.targets, self.per_target = dsn, targets, per_target
        self.tag = secrets.token_hex(2)
        self.group = f"b{self.tag}grp"

    def prefix(self, t: int) -> str:
        return f"b{self.tag}{t:03d}_"

    def env_name(self, t: int) -> str:
        return f"JG_BENCH_{self.tag.upper()}_{t:03d}"

    @property
    def env(self) -> dict[str, str]:
        return {self.env_name(t): self.dsn for t in range(self.targets)}

    def write(self, root: Path) -> None:
        expires = iso(datetime.now(timezone.utc) + timedelta(hours=4))
        lines = ["targets:"]
        for t in range(self.targets):
            lines += [f"  t{t:03d}:", "    engine: postgres", f"    dsn_env: {self.env_name(t)}",
                      "    environment: production", f"    role_prefix: {self.prefix(t)}"]
        lines += ["access:", "  readonly:", f"    roles: [{self.group}]", "    max_duration: 8h",
                  "people:"]
        people = [f"u{p:05d}" for p in range(self.per_target)]
        lines += [f"  {p}:\n    email: {p}@example.com\n    groups: [backend]" for p in people]
        files = [("policies/main.yaml", "\n".join(lines) + "\n")]
        files += [(f"grants/t{t:03d}/{p}.yaml",
                   f"grantee: {p}\ntarget: t{t:03d}\naccess: readonly\nexpires: {expires}\n"
                   "reason: BENCH-1 many targets\n")
                  for t in range(self.targets) for p in people]
        commit_files(root, files, f"{self.targets} targets x {self.per_target} grants")

    def create_group(self) -> None:
        with connect(self.dsn) as c:
            c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(self.group)))

    def drop(self) -> None:
        with connect(self.dsn) as c:
            names = [r[0] for r in c.execute("SELECT rolname FROM pg_roles WHERE "
                                             "starts_with(rolname, %s)", [f"b{self.tag}"])]
            logins = [n for n in names if n != self.group]
            for start in range(0, len(logins), 500):
                chunk = sql.SQL(", ").join(map(sql.Identifier, logins[start:start + 500]))
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(chunk))
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.group)))


def jitgrant(root: Path, env: dict[str, str], *args: str) -> tuple[float, int]:
    """One command in a process of its own, as an operator runs it: (seconds, exit code)."""
    command = [str(Path(sys.executable).with_name("jitgrant")), *args, "--repo", str(root)]
    started = time.perf_counter()
    proc = subprocess.run(command, env={**os.environ, **IDENTITY, **env}, capture_output=True,
                          text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 2):
        raise SystemExit(f"bench: {' '.join(args)} failed ({proc.returncode}): "
                         f"{proc.stderr[-1500:]}")
    return elapsed, proc.returncode


def measure(fleet: Fleet, folder: Path, repeat: int, jobs: list[int]) -> dict[str, float]:
    """Apply once (creating every login), then time the no-op runs."""
    root = folder / f"repo-{fleet.targets}x{fleet.per_target}"
    fleet.write(root)
    fleet.create_group()
    figures: dict[str, float] = {}
    first, code = jitgrant(root, fleet.env, "apply")
    figures["first apply"] = first
    runs = [("apply", f"apply --jobs {n}", ["apply", "--jobs", str(n)]) for n in jobs]
    runs.append(("plan", "plan", ["plan"]))
    for kind, label, args in runs:
        times = []
        for _ in range(repeat):
            seconds, code = jitgrant(root, fleet.env, *args)
            if code != 0:
                raise SystemExit(f"bench: the no-op {kind} found changes (exit {code})")
            times.append(seconds)
        figures[f"no-op {label}"] = statistics.median(times)
    return figures


@contextmanager
def server(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with EmbeddedPostgres(new_password(), PG15_BIN if PG15_BIN.is_dir() else None,
                          settings={"max_connections": "100"}) as local:
        yield local.uri()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.many_targets", description=__doc__)
    p.add_argument("--dsn", help="a superuser URI (default: a throwaway PostgreSQL 15 cluster "
                                 "with max_connections = 100)")
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--per-target", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3, help="runs per figure, median (default 3)")
    p.add_argument("--jobs", default="8", help="--jobs values to time, comma-separated")
    args = p.parse_args(argv)
    jobs = [int(n) for n in args.jobs.split(",")]
    total = args.targets * args.per_target
    with server(args.dsn) as dsn, tempfile.TemporaryDirectory(prefix="jg-bench-") as folder:
        with connect(dsn) as c:
            row = c.execute("SHOW max_connections").fetchone()
        print(f"{describe(dsn)}, max_connections {row[0] if row else '?'}; "
              f"{cores()} cores; Python {sys.version.split()[0]}")
        for targets, per in ((args.targets, args.per_target), (1, total)):
            fleet = Fleet(dsn, targets, per)
            try:
                figures = measure(fleet, Path(folder), args.repeat, jobs if targets > 1 else [8])
            finally:
                fleet.drop()
            for label, seconds in figures.items():
                print(f"{targets} target{'s' if targets > 1 else ''} x {per} grants: "
                      f"{label}: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
