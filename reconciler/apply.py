"""Run a plan through an engine, one target at a time, each under its lock."""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Protocol

from .aftercut import Earlier, FollowUp, compare
from .dsn import DsnError, admin_dsn, admin_dsn_or_none
from .engines import ENGINES, ActionResult, Session, Statement
from .errors import ConnectionLost, ForeignLock, Problem, UserError
from .model import ActualState, DesiredState, Policy, Target
from .plan import TargetPlan, desired_state, diff
from .prdiff import Review
from .redact import redact
from .snapshot import no_gc_pauses
from .jobs import DEFAULT_JOBS, bounded_map, tasks
from .targets import select_in
from .validate import Snapshot


class Approver(Protocol):
    """lookup.Lookup as reconcile sees it: the verdicts on a target's plan."""

    def check(self, plan: TargetPlan) -> Any: ...


def new_run_id() -> str:
    """A run's id, as its audit record and its log events name it."""
    return uuid.uuid4().hex[:12]


@dataclass
class TargetRun:
    target: Target
    plan: TargetPlan | None = None
    statements: list[Statement] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    executed: bool = False
    bug: str | None = None  # the traceback of an unexpected error, for -v
    prepared: list[str] | None = None  # the audit record's heads of actions (audit.preparer)
    # what the server showed of the actions an earlier run's lost connection left not done
    follow_ups: list[FollowUp] = field(default_factory=list)
    # what the plan was made from (None offline or when the server was not read): overdue.py
    # counts the logins usable past their grant's end from these
    desired: DesiredState | None = None
    actual: ActualState | None = None
    # when the target's turn began, and how long it took (in all, and executing its plan):
    # for --log-format json; a prefetched connection and catalog read are not counted
    started: datetime | None = None
    seconds: float | None = None
    execute_seconds: float | None = None
    # grant file -> the audit's `approval` object (lookup.py), for its creates and updates
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    # login -> sealing.Outcome for its sealed logins (None: not planned with a sealer)
    sealed: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        if self.error or any(r.error for r in self.results):
            return "failed"
        return "ok"

    @property
    def changes(self) -> int:
        return len(self.plan.actions) if self.plan else 0

    def shown_by_action(self) -> list[list[str]]:
        """Each action's statements as printed (passwords masked), grouped in one pass."""
        grouped: list[list[str]] = [[] for _ in (self.plan.actions if self.plan else ())]
        for stmt in self.statements:
            grouped[stmt.action].append(stmt.shown)
        return grouped


@dataclass
class Run:
    snapshot: Snapshot
    started: datetime
    targets: list[TargetRun]
    run_id: str = field(default_factory=new_run_id)
    finished: datetime | None = None
    review: Review | None = None  # with --base: what the pull request changes
    offline: bool = False  # planned against a server with none of our logins
    sealer: Any = None  # sealing.Sealer: the sealed files the audit commit writes and removes

    @property
    def problems(self) -> list[Problem]:
        found = list(self.snapshot.problems)
        for t in self.targets:
            found.extend(t.plan.problems if t.plan else ())
        return found

    @property
    def failed(self) -> bool:
        return (any(t.status == "failed" for t in self.targets)
                or any(p.severity == "error" for p in self.problems))

    @property
    def bugs(self) -> list[str]:
        return [t.bug for t in self.targets if t.bug]

    @property
    def has_changes(self) -> bool:
        return any(t.changes for t in self.targets)


def select_targets(snapshot: Snapshot, only: Sequence[str] = (),
                   environments: Sequence[str] = ()) -> list[Target]:
    return _select(snapshot.policy, only, environments)


def _select(policy: Policy, only: Sequence[str],
            environments: Sequence[str] = ()) -> list[Target]:
    """The targets `only`'s names or globs match and, with `environments`, whose environment
    one of them names (all when both are empty), by name."""
    return [policy.targets[name] for name in select_in(policy.targets, only, environments)]


def group_roles(snapshot: Snapshot) -> frozenset[str]:
    return _groups(snapshot.policy)


def _groups(policy: Policy) -> frozenset[str]:
    return frozenset(r for level in policy.access.values() for r in level.roles)


@dataclass(frozen=True)
class _Lock:
    """How the target's lock was taken: `foreign` names a session of another role that held it
    (the target then fails, naming it); `revocations_only` when it still holds it."""

    foreign: str | None = None
    revocations_only: bool = False


def _take_lock(session: Session, execute: bool) -> _Lock:
    if not execute:
        return _Lock()
    try:
        return _Lock(session.lock())
    except ForeignLock as exc:
        return _Lock(str(exc), revocations_only=True)


def only_revocations(plan: TargetPlan) -> TargetPlan:
    """Without the lock nothing is created or changed; what is due to end still ends."""
    return replace(plan, actions=tuple(a for a in plan.actions if a.kind == "revoke"))


@dataclass
class _Fetch:
    """One target's connection, lock and catalog read, made in a thread of its own. It holds
    one of the run's slots (see jobs.py) until its session is closed."""

    target: Target
    groups: frozenset[str]
    dsn: str = field(default="", repr=False)
    thread: threading.Thread | None = None
    session: Session | None = None
    actual: ActualState | None = None
    error: BaseException | None = None
    lock: _Lock | None = None


class Prefetch:
    """Connect, lock and read the first targets' catalogs while the grant files are still
    being checked: the server works, and the driver waits on the network with the GIL
    released, alongside the checks. Only as many as `jobs` allows: the targets the workers of
    `reconcile` take first, each holding one of `slots` until reconciled. Pass `start` as
    read_snapshot's `on_policy`, the object to `reconcile`, and close it when done (a context
    manager)."""

    def __init__(self, execute: bool, env: Mapping[str, str] | None = None,
                 only: Sequence[str] = (), jobs: int = DEFAULT_JOBS,
                 environments: Sequence[str] = ()) -> None:
        self.execute, self.only, self.environments = execute, only, environments
        self.env = os.environ if env is None else env
        self.jobs = jobs
        self.slots = threading.BoundedSemaphore(jobs)
        self.fetches: dict[str, _Fetch] = {}

    def start(self, policy: Policy) -> None:
        try:
            selected = _select(policy, self.only, self.environments)
        except UserError:
            return  # reconcile reports the unknown target
        groups = _groups(policy)
        # The first tasks in the order reconcile's workers take them: a worker never waits
        # for a slot that a fetch further down the queue holds. Targets that share a server
        # and a prefix (and so the lock) are one task and take turns: none is locked ahead
        # of its turn.
        for task in tasks(selected, self.env, self.execute)[:self.jobs]:
            target = task[0]
            dsn = admin_dsn_or_none(target, self.env) if target.engine in ENGINES else None
            if len(task) > 1 or not dsn:
                continue
            self.slots.acquire()  # free: nothing else holds one yet
            fetch = _Fetch(target, groups, dsn)
            fetch.thread = threading.Thread(target=self._fetch, args=(fetch,), daemon=True,
                                            name=f"jitgrant-inspect-{target.name}")
            self.fetches[target.name] = fetch
            fetch.thread.start()

    def _fetch(self, fetch: _Fetch) -> None:
        try:
            fetch.session = ENGINES[fetch.target.engine].connect(fetch.target, fetch.dsn)
            fetch.lock = _take_lock(fetch.session, self.execute)
            fetch.actual = fetch.session.inspect(fetch.groups)
        except BaseException as exc:  # noqa: BLE001 - raised where the target is reconciled
            fetch.error = exc

    def take(self, target: Target, groups: frozenset[str]) -> _Fetch | None:
        """The finished fetch for `target` (its session, and its slot, now the caller's to
        close and release), or None when there is none for exactly this target and these
        group roles."""
        fetch = self.fetches.pop(target.name, None)
        if fetch is None:
            return None
        assert fetch.thread is not None
        fetch.thread.join()
        if fetch.target != target or fetch.groups != groups:
            self._discard(fetch)
            return None
        return fetch

    def keep_only(self, names: set[str]) -> None:
        """Give back the slots of the fetches reconcile will not take first (made for another
        selection): its workers must never wait on them."""
        for name in [n for n in self.fetches if n not in names]:
            self._discard(self.fetches.pop(name))

    def _discard(self, fetch: _Fetch) -> None:
        if fetch.thread is not None:
            fetch.thread.join()
        _close(fetch.session)
        self.slots.release()

    def close(self) -> None:
        """Wait for the fetches nobody took and close their sessions (releasing locks)."""
        for fetch in self.fetches.values():
            self._discard(fetch)
        self.fetches.clear()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(session: Session | None) -> None:
    if session is not None:
        try:
            session.close()
        except Exception:  # noqa: BLE001,S110 - closing what was never used; nothing to report
            pass


# Offline, the backstop events' schema (the DSN's database) is unknown: shown as this name.
OFFLINE_EVENT_SCHEMA = "dsn_database"


def offline_state(snapshot: Snapshot, target: Target) -> ActualState:
    """What a server with none of our logins, and every group role, would report (MySQL
    targets are rendered in MariaDB's dialect, with the event scheduler on, so a target with
    `expiry_backstop: event` shows the events apply would create)."""
    flavor = "postgres" if target.engine == "postgres" else "mariadb"
    events = target.engine != "postgres" and target.expiry_backstop == "event"
    return ActualState(roles=MappingProxyType({}), existing_groups=group_roles(snapshot),
                       admin="", admin_is_superuser=False, database="", flavor=flavor,
                       event_scheduler=events,
                       event_schema=OFFLINE_EVENT_SCHEMA if events else None)


def reconcile(snapshot: Snapshot, now: datetime, *, only: Sequence[str] = (),
              execute: bool = False, offline: bool = False,
              env: Mapping[str, str] | None = None,
              while_executing: Callable[[TargetRun], None] | None = None,
              prefetch: Prefetch | None = None, earlier: Earlier | None = None,
              jobs: int = DEFAULT_JOBS, environments: Sequence[str] = (),
              run_id: str | None = None,
              on_target: Callable[[TargetRun], None] | None = None,
              approver: Approver | None = None, sealer: Any = None) -> Run:
    """Plan (and with `execute`, apply) every selected target, at most `jobs` connections at
    once (the prefetch's bound when there is one, see jobs.py); a failing target never stops
    the others. `while_executing(target_run)` runs in a thread while a target's statements
    execute (the audit prepares its record there). `prefetch` holds the first targets'
    sessions and catalogs read while the snapshot was read (made with the same `execute` and
    `env`). `earlier(target name)`: the actions an earlier run left cut, compared with the
    server. `on_target(target_run)` is called, from a worker, as each target finishes (the
    progress line, the event log). `approver` (lookup.py) judges the grants of each plan's
    creates and updates; those it refuses are planned again as not granted. `sealer`
    (sealing.Sealer) gives sealed logins their passwords; without one they are held."""
    env = os.environ if env is None else env
    run = Run(snapshot, now, [], offline=offline, sealer=sealer)
    if run_id is not None:
        run.run_id = run_id
    selected = select_targets(snapshot, only, environments)
    if prefetch is not None:
        jobs, slots = prefetch.jobs, prefetch.slots
    else:
        slots = threading.BoundedSemaphore(jobs)
    todo = tasks(selected, env, execute)
    if prefetch is not None:
        prefetch.keep_only({task[0].name for task in todo[:jobs]})
    context = _Context(snapshot, now, execute, offline, env, while_executing, prefetch,
                       earlier, slots, on_target, approver, sealer)
    with no_gc_pauses():
        done = bounded_map(todo, context.task, jobs)
    by_name = {r.target.name: r for results in done for r in results}
    run.targets = [by_name[t.name] for t in selected]
    run.finished = datetime.now(now.tzinfo)
    return run


def _timed(work: Callable[..., TargetRun], *args: object) -> TargetRun:
    """`work(*args)`, its TargetRun stamped with when it began and how long it took."""
    started, clock = datetime.now(timezone.utc), time.monotonic()
    result = work(*args)
    result.started, result.seconds = started, time.monotonic() - clock
    return result


@dataclass(frozen=True)
class _Context:
    """What every target of one run is reconciled with; `task` runs in a worker."""

    snapshot: Snapshot
    now: datetime
    execute: bool
    offline: bool
    env: Mapping[str, str]
    while_executing: Callable[[TargetRun], None] | None
    prefetch: Prefetch | None
    earlier: Earlier | None
    slots: threading.BoundedSemaphore
    on_done: Callable[[TargetRun], None] | None
    approver: Approver | None = None
    sealer: Any = None

    def task(self, targets: list[Target]) -> list[TargetRun]:
        """The targets one after another (they share a lock when there are several)."""
        results = []
        for target in targets:
            result = _timed(_one_target, self, target)
            if self.on_done is not None:
                self.on_done(result)
            results.append(result)
        return results


def _one_target(ctx: _Context, target: Target) -> TargetRun:
    engine = ENGINES.get(target.engine)
    result = TargetRun(target)
    if engine is None:
        result.error = f"engine {target.engine!r} is not available"
        return result
    desired = desired_state(ctx.snapshot, target, ctx.now)
    if ctx.offline:
        actual = offline_state(ctx.snapshot, target)
        result.plan = _approved(ctx, result, target, desired, actual)[0]
        result.statements = engine.render(result.plan, actual)
        return result
    try:
        dsn = admin_dsn(target, ctx.env)  # remembered there, so that redact() masks it
    except DsnError as exc:
        result.error = str(exc)
        return result
    session: Session | None = None
    groups = group_roles(ctx.snapshot)
    fetched = ctx.prefetch.take(target, groups) if ctx.prefetch is not None else None
    if fetched is None:
        ctx.slots.acquire()  # a fetch holds its own slot
    execute = ctx.execute
    try:
        if fetched is not None:
            session = fetched.session  # closed below, also when the fetch failed
            if fetched.error is not None:
                raise fetched.error
            assert session is not None and fetched.actual is not None
            actual, lock = fetched.actual, fetched.lock or _Lock()
        else:
            session = engine.connect(target, dsn)
            lock = _take_lock(session, execute)
            actual = session.inspect(groups)
        result.plan, result.desired = _approved(ctx, result, target, desired, actual)
        result.actual = actual
        if lock.revocations_only:
            result.plan = only_revocations(result.plan)
        result.statements = engine.render(result.plan, actual)
        if execute and ctx.earlier is not None:
            result.follow_ups = compare(ctx.earlier(target.name), actual, result.plan)
        if execute and result.plan.actions:
            result.executed = True
            clock = time.monotonic()
            try:
                with _alongside(ctx.while_executing, result):
                    result.results = session.execute(result.plan, result.statements, actual)
            finally:
                result.execute_seconds = time.monotonic() - clock
        if lock.foreign:
            result.error = lock.foreign
    except ConnectionLost as exc:
        _failed(result, str(exc), unknown=True, known=exc.results)
    except UserError as exc:
        _failed(result, redact(str(exc)))
    except Exception as exc:  # noqa: BLE001 - one target's bug must not stop the others
        # A repr quotes its arguments: a driver's UnicodeError quotes the password.
        _failed(result, redact(f"internal error: {exc!r}"))
        result.bug = redact(traceback.format_exc())
    finally:
        try:
            if session is not None:
                session.close()
        finally:
            ctx.slots.release()
    return result


def _approved(ctx: _Context, result: TargetRun, target: Target, desired: DesiredState,
              actual: ActualState) -> tuple[TargetPlan, DesiredState]:
    """The plan, with the grants the approver refuses left out (planned again without them:
    a login they alone would make or extend is not made or extended; one they alone keep is
    revoked). Only the refused grants' logins change, and their other grants were judged with
    them, so one more pass is enough."""
    desired = _sealed(ctx, result, desired, actual)
    plan = diff(desired, actual, ctx.now)
    if ctx.approver is None:
        return plan, desired
    verdicts = ctx.approver.check(plan)
    result.approvals = verdicts.approvals
    if verdicts.refused:
        desired = desired_state(ctx.snapshot, target, ctx.now, verdicts.refused)
        desired = _sealed(ctx, result, desired, actual)
        plan = diff(desired, actual, ctx.now)
    if verdicts.notes:
        plan = replace(plan, problems=plan.problems + tuple(verdicts.notes))
    return plan, desired


def _sealed(ctx: _Context, result: TargetRun, desired: DesiredState,
            actual: ActualState) -> DesiredState:
    """Sealed logins with their passwords' verifiers (sealing.py), or held without a sealer."""
    from .sealing import hold

    if ctx.sealer is None:
        return hold(desired, actual)
    desired, result.sealed = ctx.sealer.settle(desired, actual)
    return desired


@contextmanager
def _alongside(work: Callable[[TargetRun], None] | None, result: TargetRun) -> Iterator[None]:
    """`work(result)` in a thread while the block runs. The server executes and psycopg waits
    on the network with the GIL released, so the thread's Python work costs no wall time. A
    failure there is dropped: the work is only a head start (result.prepared stays None)."""
    if work is None:
        yield
        return
    thread = threading.Thread(target=_quietly, args=(work, result), daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _quietly(work: Callable[[TargetRun], None], result: TargetRun) -> None:
    try:
        work(result)
    except Exception:  # noqa: BLE001 - a head start that failed is simply not taken
        result.prepared = None


def _failed(result: TargetRun, error: str, unknown: bool = False,
            known: list[ActionResult] | None = None) -> None:
    """After a lost connection, each action as the engine knew it (done, rolled back, not
    run, in doubt); without the engine's word, none is known to have failed (or been done):
    each says unknown, and the next run reads what the server holds."""
    result.error = error
    if result.plan and result.executed and known is not None \
            and len(known) == len(result.plan.actions):
        result.results = known
    elif result.plan and result.executed and not result.results:
        said = f"unknown: the connection was lost ({error}); the next run reads what the " \
            "server holds and does what is left" if unknown else error
        result.results = [ActionResult(error=said, unknown=unknown,
                                       cut="in_doubt" if unknown else None)
                          for _ in result.plan.actions]
