"""One benchmark run for N grants: every step timed with perf_counter around jitgrant's own
functions (read_snapshot, reconcile, audit.persist), in this process. Each step also checks
that it did what it should, so a fast wrong answer cannot pass for a fast right one."""

from __future__ import annotations

import cProfile
import gc
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol, TypeVar

from reconciler.apply import Prefetch, Run, reconcile
from reconciler.audit import persist, preparer
from reconciler.engines import Statement, postgres
from reconciler.plan import marker_comment
from reconciler.render import problems_text
from reconciler.snapshot import read_snapshot
from reconciler.validate import Snapshot

from . import ldap2pg
from . import repo as access
from .ldap2pg import Ldap2pg
from .server import Namespace, comment_on, members, vacuum_catalogs

T = TypeVar("T")


class BenchError(Exception):
    """A step did not do what it should; the figures would be meaningless."""


class Space(Protocol):
    """The logins of one run (a random prefix) and its group role, on either engine."""

    prefix: str
    group: str

    def logins(self) -> list[str]: ...

    def drop_logins(self) -> None: ...


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    meaning: str


STEPS = (
    Step("generate", "generate repository",
         "policies + N grant files (N people) as one commit (`git fast-import`) and its "
         "checkout; set-up only"),
    Step("validate", "validate",
         "`read_snapshot(HEAD)` + its problems: load YAML from git, schema + policy checks"),
    Step("plan", "plan",
         "`read_snapshot` + `reconcile(execute=False)` against the empty namespace"),
    Step("plan_offline", "plan --offline",
         "`read_snapshot` + `reconcile(offline=True)`: no database"),
    Step("cli_validate", "CLI `jitgrant validate --rev HEAD`",
         "the command in a subprocess: interpreter start-up and imports included"),
    Step("cli_plan", "CLI `jitgrant plan`",
         "the command in a subprocess, text output discarded"),
    Step("apply_first", "first apply",
         "`read_snapshot` + `reconcile(execute=True)` + `audit.persist` (write + git commit): "
         "N creates"),
    Step("apply_first.snapshot", "- read_snapshot", "part of the first apply"),
    Step("apply_first.reconcile", "- reconcile", "part of the first apply: inspect, diff, "
         "render, execute"),
    Step("apply_first.audit", "- audit.persist", "part of the first apply"),
    Step("apply_noop", "second apply (no-op)",
         "the same again with nothing to do: no audit record"),
    Step("apply_noop.snapshot", "- read_snapshot", "part of the no-op apply"),
    Step("psql", "psql floor",
         "the first apply's CREATE ROLE / GRANT / COMMENT statements, after dropping the roles, "
         "through `psql -X -q -f`, in the transactions apply uses (one up to 1,000 logins, "
         "then one per 1,000): psql alone"),
    Step("expiry", "mass expiry (apply)",
         "apply with `now` past every expiry: N revocations + audit commit"),
    Step("expiry.reconcile", "- reconcile", "part of the mass expiry"),
    Step("expiry.audit", "- audit.persist", "part of the mass expiry"),
    Step("ldap2pg_cold", "ldap2pg 5.9: create",
         "`ldap2pg --real` creating the same N logins from static `role:` rules (same names, "
         "group, comments; no connection limit or expiry, which it cannot set): a process of "
         "its own, start-up included"),
    Step("ldap2pg_noop", "ldap2pg 5.9: no-op", "the same again with nothing to do"),
    Step("ldap2pg_drop", "ldap2pg 5.9: removal",
         "the rules emptied: ldap2pg drops the N logins of its scope (the run's prefix)"),
)


@dataclass
class Result:
    grants: int
    verifiers: bool
    seconds: dict[str, float] = field(default_factory=dict)
    statements: int = 0
    revocations: int = 0  # statements sent by the mass revocation (mysql mode)
    ldap2pg_queries: dict[str, int] = field(default_factory=dict)  # its count, per step
    ldap2pg_missing: str | None = None  # why there are no ldap2pg figures
    failures: dict[str, str] = field(default_factory=dict)  # step -> what the server refused
    peak_rss_mb: float = 0.0
    runs: int = 1

    def measured(self) -> dict[str, float]:
        """The seconds of the steps that did what they should."""
        return {k: v for k, v in self.seconds.items() if k not in self.failures}


def median(results: list[Result]) -> Result:
    """Several runs of the same N as one: the median of each step. The peak RSS is the first
    run's: later runs of the same process start from the heap the earlier ones left."""
    first = results[0]
    keys = [key for key in first.seconds if all(key in r.seconds for r in results)]
    seconds = {key: statistics.median(r.seconds[key] for r in results) for key in keys}
    missing = next((r.ldap2pg_missing for r in results if r.ldap2pg_missing), None)
    failures = {k: v for r in reversed(results) for k, v in r.failures.items()}
    return replace(first, seconds=seconds, runs=len(results), ldap2pg_missing=missing,
                   failures=failures)


@dataclass
class Bench:
    """Runs the steps for one N against one PostgreSQL server."""

    profile_prefix = ""  # of the --profile files; the mysql mode's differ
    dsn: str
    grants: int
    verifiers: bool = False
    profile_dir: Path | None = None
    keep: bool = False
    ldap2pg: Ldap2pg | None = None  # None: not measured
    result: Result = field(init=False)

    def __post_init__(self) -> None:
        self.result = Result(self.grants, self.verifiers)
        if self.ldap2pg is not None:
            self.result.ldap2pg_missing = self.ldap2pg.missing
        self.env = {access.DSN_ENV: self.dsn}

    def run(self) -> Result:
        workdir = Path(tempfile.mkdtemp(prefix="jitgrant-bench-"))
        try:
            with self._namespace() as ns:
                self._steps(ns, workdir / "access")
        finally:
            if self.keep:
                print(f"kept the access repository in {workdir / 'access'}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        self.result.peak_rss_mb = peak_rss_mb()
        return self.result

    def _namespace(self) -> AbstractContextManager[Space]:
        return Namespace(self.dsn)

    def _steps(self, ns: Space, root: Path) -> None:
        now = datetime.now(timezone.utc)
        repo = self._time("generate", lambda: access.build(
            root, self.grants, ns.prefix, ns.group, now, self.verifiers))
        self._validate(repo, now)
        self._plans(repo, now)
        self._cli(repo)
        sql, comments = self._first_apply(repo, ns, now)
        if "apply_first" in self.result.failures:
            self._psql_floor(repo, ns, sql, now)  # the same statements: does psql fare better?
            ns.drop_logins()
        else:
            self._noop_apply(repo, now)
            self._psql_floor(repo, ns, sql, now)
            self._expiry(repo, ns)
        self._ldap2pg(ns, comments, root.parent)

    # -- the steps ------------------------------------------------------------------------

    def _validate(self, repo: access.AccessRepo, now: datetime) -> None:
        snap = self._time("validate", lambda: _validate(repo.root, now))
        active = sum(1 for g in snap.grants if g.is_current(now))
        if snap.problems or active != self.grants:
            raise BenchError(f"validate: {active} active of {self.grants}, "
                             f"{len(snap.problems)} problems, first: {snap.problems[:1]}")

    def _plans(self, repo: access.AccessRepo, now: datetime) -> None:
        run = self._time("plan", lambda: self._plan(repo, now, offline=False))
        self._expect(run, "plan", "create", executed=False)
        run = self._time("plan_offline", lambda: self._plan(repo, now, offline=True))
        self._expect(run, "plan --offline", "create", executed=False)

    def _cli(self, repo: access.AccessRepo) -> None:
        base = [sys.executable, "-m", "reconciler.cli"]
        self._time("cli_validate", lambda: _command(base + ["validate", "--repo", str(repo.root),
                                                            "--rev", "HEAD"], self.env, {0}))
        self._time("cli_plan", lambda: _command(base + ["plan", "--repo", str(repo.root)],
                                                self.env, {2}))

    def _first_apply(self, repo: access.AccessRepo, ns: Space,
                     now: datetime) -> tuple[list[str], dict[str, str]]:
        """The statements sent, and each login's comment (for ldap2pg). A server that refuses
        the creations (PostgreSQL's lock table is full, say) is reported, not fatal."""
        run = self._time("apply_first", lambda: self._apply(repo, now, "apply_first"))
        target = run.targets[0]
        actions = target.plan.actions if target.plan else ()
        comments = {a.login: marker_comment(a.desired, a.target) for a in actions if a.desired}
        sql = _floor_script(target.statements)
        errors = [r.error for r in target.results if r.error]
        if errors and target.executed and len(comments) == self.grants:
            self.result.statements = len(target.statements)
            self.result.failures["apply_first"] = (
                f"{len(errors):,} of {self.grants:,} creations failed, {len(ns.logins()):,} "
                f"logins made: {errors[-1]}")
            return sql, comments
        self._expect(run, "first apply", "create", executed=True)
        if len(ns.logins()) != self.grants:
            raise BenchError(f"first apply: {len(ns.logins())} logins on the server")
        statements = run.targets[0].statements
        if any(s.database is not None or s.phase != "main" for s in statements):
            raise BenchError("first apply: expected only main-phase statements")
        self.result.statements = len(statements)
        return sql, comments

    def _noop_apply(self, repo: access.AccessRepo, now: datetime) -> None:
        later = now + timedelta(seconds=1)
        run = self._time("apply_noop", lambda: self._apply(repo, later, "apply_noop"))
        if run.has_changes or run.failed:
            raise BenchError(f"second apply: {run.targets[0].changes} changes, "
                             f"error {run.targets[0].error}")

    def _psql_floor(self, repo: access.AccessRepo, ns: Space, statements: list[str],
                    now: datetime) -> None:
        psql = shutil.which("psql")
        if psql is None:
            raise BenchError("psql floor: no psql on PATH")
        ns.drop_logins()
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write("".join(s + ";\n" for s in statements))  # holds verifiers: 0600, removed
        try:
            cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", f.name, self.dsn]
            self._time("psql", lambda: _command(cmd, {}, {0}), profile=False)
        except BenchError as exc:
            if "apply_first" not in self.result.failures:
                raise
            self.result.failures["psql"] = str(exc).split(": ", 1)[-1]
            return
        finally:
            os.unlink(f.name)
        if "apply_first" not in self.result.failures:
            self._rebuilt(repo, now, "psql floor")

    def _expiry(self, repo: access.AccessRepo, ns: Space) -> None:
        after = repo.expires + timedelta(minutes=1)
        run = self._time("expiry", lambda: self._apply(repo, after, "expiry"))
        self._expect(run, "mass expiry", "revoke", executed=True)
        left = ns.logins()
        if left:
            raise BenchError(f"mass expiry: {len(left)} logins left, e.g. {left[0]}")

    def _ldap2pg(self, ns: Space, logins: dict[str, str], folder: Path) -> None:
        """ldap2pg on the namespace jitgrant just emptied: create the logins, again (no-op),
        then drop them by emptying its rules. A failure is reported, not fatal."""
        tool = self.ldap2pg
        if tool is None or tool.command is None or self.result.ldap2pg_missing:
            return
        comment_on(self.dsn, ns.group, ldap2pg.GROUP_COMMENT)  # or it would comment it itself
        full, empty = folder / "ldap2pg.yml", folder / "ldap2pg-empty.yml"
        full.write_text(ldap2pg.config(ns.prefix, ns.group, logins, self.dsn))
        empty.write_text(ldap2pg.config(ns.prefix, ns.group, {}, self.dsn))
        try:
            self._ldap2pg_step("ldap2pg_cold", tool, full)
            made = members(self.dsn, ns.group, ns.prefix)
            if len(made) != self.grants or len(ns.logins()) != self.grants:
                raise RuntimeError(f"made {len(ns.logins())} logins, {len(made)} in the group")
            if "Nothing to do" not in self._ldap2pg_step("ldap2pg_noop", tool, full):
                raise RuntimeError("its second run was not a no-op")
            self._ldap2pg_step("ldap2pg_drop", tool, empty)
            if ns.logins():
                raise RuntimeError(f"{len(ns.logins())} logins left after its removal run")
        except RuntimeError as exc:
            self.result.ldap2pg_missing = f"ldap2pg {ldap2pg.VERSION} ran but failed: {exc}"
            print(f"bench: {self.result.ldap2pg_missing}", file=sys.stderr)

    def _ldap2pg_step(self, key: str, tool: Ldap2pg, config: Path) -> str:
        log = self._time(key, lambda: tool.run(config, self.dsn), profile=False)
        found = re.search(r"Generated (\d+) querie", log)
        self.result.ldap2pg_queries[key] = int(found.group(1)) if found else 0
        return log

    # -- helpers --------------------------------------------------------------------------

    def _rebuilt(self, repo: access.AccessRepo, now: datetime, what: str) -> None:
        """A floor must build exactly what apply built: then a plan finds nothing to do."""
        snap = read_snapshot(repo.root, "HEAD", now)
        check = reconcile(snap, now, env=self.env)
        if check.has_changes or check.failed:
            raise BenchError(f"{what}: the statements did not rebuild apply's state")

    def _plan(self, repo: access.AccessRepo, now: datetime, offline: bool) -> Run:
        """What `jitgrant plan` does: the catalog is read while the grant files are checked."""
        with Prefetch(execute=False, env=self.env) as prefetch:
            snap = read_snapshot(repo.root, "HEAD", now,
                                 on_policy=None if offline else prefetch.start)
            return reconcile(snap, now, offline=offline, env=self.env, prefetch=prefetch)

    def _apply(self, repo: access.AccessRepo, now: datetime, key: str) -> Run:
        """What `jitgrant apply` does, with its three parts timed on their own too (the
        catalog is read while the grant files are checked: that is read_snapshot's time)."""
        with Prefetch(execute=True, env=self.env) as prefetch:
            snap = self._part(f"{key}.snapshot", lambda: read_snapshot(
                repo.root, "HEAD", now, on_policy=prefetch.start))
            run = self._part(f"{key}.reconcile",
                             lambda: reconcile(snap, now, execute=True, env=self.env,
                                               while_executing=preparer(snap),
                                               prefetch=prefetch))
        self._part(f"{key}.audit", lambda: persist(repo.root, run))
        return run

    def _expect(self, run: Run, what: str, kind: str, executed: bool) -> None:
        target = run.targets[0]
        actions = target.plan.actions if target.plan else ()
        kinds = {a.kind for a in actions}
        ok = len(actions) == self.grants and kinds == {kind} and not run.failed
        if executed:
            ok = ok and target.executed and all(r.error is None for r in target.results)
        if not ok:
            raise BenchError(f"{what}: {len(actions)} actions {sorted(kinds)}, "
                             f"error {target.error}, problems {run.problems[:1]}")

    def _time(self, key: str, func: Callable[[], T], profile: bool = True) -> T:
        # Each command runs in a fresh process; here the steps share one. Collect what the
        # previous step left behind (and unfreeze what it froze) so it is not this step's cost.
        gc.unfreeze()
        gc.collect()
        self._settle()
        with self._profiled(key, profile):
            return self._part(key, func)

    def _settle(self) -> None:
        """Every step creates or drops thousands of roles, leaving as many dead rows in the
        shared catalogs; with autovacuum off (as on the machine this was written on) they pile
        up over a run and every catalog scan, jitgrant's and psql's alike, slows down. The
        catalogs are vacuumed before each step, untimed, as autovacuum would keep them."""
        vacuum_catalogs(self.dsn)

    def _part(self, key: str, func: Callable[[], T]) -> T:
        start = time.perf_counter()
        value = func()
        self.result.seconds[key] = seconds = time.perf_counter() - start
        print(f"  {self.grants:>7,} {key:<22} {seconds:8.3f} s", file=sys.stderr)
        return value

    @contextmanager
    def _profiled(self, key: str, enabled: bool) -> Iterator[None]:
        if self.profile_dir is None or not enabled:
            yield
            return
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(self.profile_dir
                                   / f"{self.profile_prefix}{self.grants}-{key}.pstats"))


def _floor_script(statements: list[Statement]) -> list[str]:
    """The first apply's statements for psql, in the transactions apply commits them in: one
    per postgres.TX_ACTIONS logins (a single transaction of 50,000 fills the lock table)."""
    script: list[str] = []
    opened: set[int] = set()
    for stmt in statements:
        if stmt.action not in opened and len(opened) % postgres.TX_ACTIONS == 0:
            script += ["COMMIT", "BEGIN"] if script else ["BEGIN"]
        opened.add(stmt.action)
        script.append(stmt.sql)
    return script + ["COMMIT"] if script else script


def _validate(root: Path, now: datetime) -> Snapshot:
    snapshot = read_snapshot(root, "HEAD", now)
    problems_text(snapshot.problems)  # what the command prints
    return snapshot


def _command(cmd: list[str], env: dict[str, str], codes: set[int]) -> None:
    proc = subprocess.run(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode not in codes:
        raise BenchError(f"{' '.join(cmd[:4])}: exit {proc.returncode}: "
                         f"{' '.join(proc.stderr[-500:].split())}")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
