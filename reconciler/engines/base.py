"""The engine protocol: how jitgrant talks to one kind of database server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ForeignLock, LockHeld
from ..fastinit import fast_init
from ..model import ActualState, OpenSession, Target
from ..plan import Action, TargetPlan
# The engines' scrubbing of driver messages is the one every other path uses too.
from ..redact import MASKED as MASKED
from ..redact import dsn_secrets as dsn_secrets
from ..redact import scrub as scrub
from ..redact import scrubbed_line as scrubbed_line

# lockout: nobody can log in as a revoked login; sessions: its sessions end; disarm: its
# objects become usable by their owner only (PostgreSQL); strip: its memberships go; objects:
# its objects move, database by database; main: everything else.
PHASES = ("lockout", "sessions", "disarm", "strip", "objects", "main")


@fast_init
@dataclass(frozen=True)
class Statement:
    """One SQL statement of a plan. `sql` may carry a password verifier: only `shown` is printed."""

    action: int  # index of the action in the TargetPlan
    phase: str  # one of PHASES, run in that order
    sql: str = field(repr=False)
    shown: str
    database: str | None = None  # None: the admin connection's own database


@dataclass
class ActionResult:
    statements: int = 0
    sessions_ended: int = 0
    # the sessions it ended, with their start (the audit lists at most SESSION_CAP of them)
    ended_sessions: list[OpenSession] = field(default_factory=list)
    owned_objects: dict[str, str] = field(default_factory=dict)  # database -> new owner
    # database -> the objects the revoked login owned there, as the audit lists them
    planted: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    unknown: bool = False  # the connection was lost: whether it was done is not known
    # The connection was lost before the action was done: what became of the rest of its
    # statements (one of CUTS); None when it was done, or failed for another reason.
    cut: str | None = None

    @property
    def status(self) -> str:
        return "unknown" if self.unknown else "failed" if self.error else "ok"


# not_run: the statements left had not been sent; rolled_back: those in flight were lost before
# their COMMIT, so the server rolled them back; in_doubt: the connection was lost during their
# COMMIT (PostgreSQL) or while the statement ran (MySQL, where each commits alone): whether they
# took effect is not known.
CUTS = ("not_run", "rolled_back", "in_doubt")


class Progress:
    """What of a plan is committed, kept while it executes, so that a lost connection is
    recorded action by action: done, rolled back, not run, or in doubt."""

    def __init__(self, plan: TargetPlan, statements: Sequence[Statement],
                 autocommit: bool = False) -> None:
        # where a statement is in doubt: in its transaction's COMMIT, or (each statement
        # committing alone) while it ran
        self.lost_in = "while running" if autocommit else "during the COMMIT of"
        self.results = [ActionResult() for _ in plan.actions]
        self.total = [0] * len(plan.actions)
        for stmt in statements:
            self.total[stmt.action] += 1
        self.done = [0] * len(plan.actions)  # statements committed
        self.flight: dict[int, int] = {}  # action -> its statements in the open transaction
        self.committing = False  # the flight's statements ran: only the COMMIT was left

    def begin(self, stmts: Sequence[Statement], committing: bool = False) -> None:
        self.flight = {}
        for stmt in stmts:
            self.flight[stmt.action] = self.flight.get(stmt.action, 0) + 1
        self.committing = committing

    def committed(self) -> None:
        for action, count in self.flight.items():
            self.done[action] += count
        self.flight = {}

    def at_cut(self, error: str) -> list[ActionResult]:
        """The results, each action not done saying what became of it."""
        for index, result in enumerate(self.results):
            if (result.error and result.cut is None) or self.done[index] >= self.total[index]:
                continue  # failed for a reason of its own before, or done
            result.statements = self.done[index]
            result.error, result.cut, result.unknown = self._said(index, error)
        return self.results

    def _said(self, index: int, error: str) -> tuple[str, str, bool]:
        done, total = self.done[index], self.total[index]
        sent = self.flight.get(index, 0)
        left = total - done - sent
        before = f"{done} of its {total} statements had committed; " if done else ""
        after = f"; the other {left} never ran" if left > 0 and sent else ""
        lost = f"the connection was lost ({error})"
        if sent and self.committing and not left:
            return (f"unknown: {before}{lost} {self.lost_in} its {'last ' if done else ''}"
                    f"{sent} statement(s): whether they took effect is not known; the next "
                    "run reads what the server holds and says", "in_doubt", True)
        if sent and self.committing:
            return (f"not done: {before}{lost} {self.lost_in} {sent} of its statements, "
                    f"whether they took effect is not known{after}", "in_doubt", False)
        if sent:
            return (f"not done: {before}{lost} before the COMMIT of {sent} of its "
                    f"statements, which the server rolled back{after}", "rolled_back", False)
        rest = "the rest" if done else "any of its statements"
        return f"not done: {before}{lost} before {rest} ran", "not_run", False


class Session(Protocol):
    """An open admin connection to one target."""

    def lock(self) -> str | None:
        """Take the target's lock. None when it was free; a message naming the foreign session
        that held it and was ended first. Raises LockHeld when a session of the reconciler's
        own role holds it (another run), ForeignLock when another role's session holds it and
        could not be ended."""

    def inspect(self, groups: frozenset[str]) -> ActualState:
        """The whole actual state in a few batched catalog queries."""

    def execute(self, plan: TargetPlan, statements: Sequence[Statement],
                actual: ActualState) -> list[ActionResult]:
        """Run the statements; one result per action of the plan."""

    def close(self) -> None: ...


class Engine(Protocol):
    name: str

    def connect(self, target: Target, dsn: str) -> Session: ...

    def render(self, plan: TargetPlan, actual: ActualState) -> list[Statement]:
        """The exact statements `execute` will run for `plan`, in order; pure."""


RenderAction = Callable[[int, Action, Target, ActualState], list[Statement]]


def render_plan(plan: TargetPlan, actual: ActualState, render_action: RenderAction
                ) -> list[Statement]:
    """Every action's statements, ordered by phase; within a phase, in action order."""
    out: list[Statement] = []
    for index, action in enumerate(plan.actions):
        out.extend(render_action(index, action, plan.target, actual))
    order = {phase: n for n, phase in enumerate(PHASES)}
    return sorted(out, key=lambda s: order[s.phase])  # sorted() is stable


# -- the target's lock -----------------------------------------------------------------------
# Any role may take an advisory lock (GET_LOCK) of any name, so the lock only keeps jitgrant's
# own runs apart. A session of another role that holds it is not a jitgrant run: it is ended
# when the reconciler may end it, and when it may not, the due revocations go ahead without the
# lock. Either way the run fails loudly, naming the holder.

LOCK_HELD = "another jitgrant run holds the lock"


def take_lock(try_lock: Callable[[], bool], holders: Callable[[], list[tuple[int, str]]],
              own_role: str, end: Callable[[int], bool]) -> str | None:
    """The Session.lock protocol over an engine's primitives: `try_lock()` takes the lock
    without waiting, `holders()` lists (session id, role) of whoever holds it, `end(id)` ends
    a session and says whether it could."""
    if try_lock():
        return None
    found = holders()
    if not found:  # released in between
        if try_lock():
            return None
        raise LockHeld(LOCK_HELD)
    if any(role == own_role for _, role in found):
        raise LockHeld(LOCK_HELD)
    names = ", ".join(f"role {role or '(unknown)'} (session {pid})" for pid, role in found)
    if all([end(pid) for pid, _ in found]) and try_lock():
        return (f"jitgrant's lock was held by {names}, not by a jitgrant run: that session was "
                "ended and the run went ahead")
    raise ForeignLock(f"jitgrant's lock is held by {names}, not by a jitgrant run, and the "
                      "reconciler may not end it: only the due revocations ran, without the "
                      "lock; end that session")

