"""The engine protocol: how jitgrant talks to one kind of database server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..fastinit import fast_init
from ..model import ActualState, Target
from ..plan import Action, TargetPlan
# The engines' scrubbing of driver messages is the one every other path uses too.
from ..redact import MASKED as MASKED
from ..redact import dsn_secrets as dsn_secrets
from ..redact import scrub as scrub
from ..redact import scrubbed_line as scrubbed_line

# lockout: nobody can log in as a revoked login; sessions: its sessions end; strip: its
# memberships go; objects: its objects move, database by database; main: everything else.
PHASES = ("lockout", "sessions", "strip", "objects", "main")


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
    owned_objects: dict[str, str] = field(default_factory=dict)  # database -> new owner
    error: str | None = None

    @property
    def status(self) -> str:
        return "failed" if self.error else "ok"


class Session(Protocol):
    """An open admin connection to one target."""

    def lock(self) -> None:
        """Take the target's lock or raise LockHeld."""

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
