"""Overdue revocations: logins that can still log in past their grant's end plus a grace.

The reconciler is what ends access; when it stops, or keeps failing at one login, access
outlives its grant and a quiet run looks like an idle one. This module names such logins from
what a run already read (the desired state and the catalog), so `plan`, `status`, `apply`, the
metrics and `doctor` all count them the same way. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .errors import UserError
from .model import ActualRole, ActualState, DesiredState
from .plan import is_managed, marked_target
from .timeutil import format_duration, iso, parse_duration

if TYPE_CHECKING:
    from .apply import Run, TargetRun

# One scheduled run (every 5 minutes in the examples) may be late or fail once without an
# alert: 15 minutes is three chances to revoke before a login counts as overdue.
DEFAULT_GRACE = timedelta(minutes=15)
GRACE_HELP = ("How long after its grant's end a login that can still log in counts as an "
              "overdue revocation (30m, 1h, PT15M).")


@dataclass(frozen=True)
class Overdue:
    """A login that can still log in although its grant ended at `ended`."""

    target: str
    login: str
    ended: datetime
    grantee: str | None = None
    access: str | None = None

    def line(self, now: datetime) -> str:
        whose = f" ({self.grantee}, {self.access})" if self.grantee and self.access else ""
        seconds = int((now - self.ended).total_seconds())
        late = format_duration(timedelta(seconds=seconds if seconds < 60 else seconds // 60 * 60))
        return (f"target {self.target}: login {self.login}{whose} can still log in {late} "
                f"after its grant ended at {iso(self.ended)}")

    def as_dict(self) -> dict[str, str | None]:
        return {"target": self.target, "login": self.login, "grantee": self.grantee,
                "access": self.access, "ended": iso(self.ended)}


def parse_grace(text: str) -> timedelta:
    """`--overdue-grace`, with the duration parser the grant files use."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UserError(f"--overdue-grace {text!r}: {exc}") from None


def can_log_in(role: ActualRole, now: datetime) -> bool:
    """PostgreSQL: LOGIN and VALID UNTIL in the future or unset (the server refuses a password
    after it). MySQL: an account (not a role) that is not locked."""
    if role.is_role or not role.can_login or role.locked:
        return False
    return role.valid_until is None or role.valid_until > now


def grant_end(name: str, role: ActualRole, desired: DesiredState,
              now: datetime) -> datetime | None:
    """When the login's access ended, if it did and that is known: the latest expiry of the
    grant files that map to it (past), else a MySQL account's backstop event time (the
    grant's expiry when it was made). A grant file deleted before its expiry gives no time
    here: PostgreSQL then still stops the password at the VALID UNTIL apply set."""
    if name in desired.logins:
        return None  # granted right now
    known = desired.known.get(name)
    if known is not None and known.expires is not None:
        return known.expires if known.expires <= now else None
    if role.backstop_at is not None and role.backstop_at <= now:
        return role.backstop_at
    return None


def overdue_in(desired: DesiredState, actual: ActualState, now: datetime,
               grace: timedelta = DEFAULT_GRACE) -> list[Overdue]:
    """The logins of one target that can still log in more than `grace` after their grant's
    end, by name. For `doctor` and anyone with a target's desired state and catalog read
    (plan.desired_state, session.inspect)."""
    target = desired.target
    found = []
    for name, role in sorted(actual.roles.items()):
        if not _ours(name, role, desired, actual):
            continue
        ended = grant_end(name, role, desired, now)
        if ended is None or ended + grace > now or not can_log_in(role, now):
            continue
        known = desired.known.get(name)
        found.append(Overdue(target.name, name, ended, known.grantee if known else None,
                             known.access if known else None))
    return found


def _ours(name: str, role: ActualRole, desired: DesiredState, actual: ActualState) -> bool:
    """A login jitgrant answers for: one a grant file maps to or that carries its marker for
    this target. Never the reconciler's own role, nor one listed in never_touch."""
    target = desired.target
    if name == actual.admin or name in target.never_touch or role.user in target.never_touch:
        return False
    if name in desired.known:
        return True
    return is_managed(role) and marked_target(role) in (None, target.name)


def overdue_logins(run: Run, grace: timedelta = DEFAULT_GRACE,
                   after: bool = False) -> list[Overdue]:
    """The overdue logins of every target the run read. `after`: those still overdue once the
    run's actions ran, i.e. without the logins a revocation of this run ended."""
    found: list[Overdue] = []
    for t in run.targets:
        if t.desired is None or t.actual is None:
            continue  # offline, or the target could not be read
        overdue = overdue_in(t.desired, t.actual, run.started, grace)
        if after and overdue:
            done = set(_revoked(t))
            overdue = [o for o in overdue if o.login not in done]
        found.extend(overdue)
    return found


def _revoked(t: TargetRun) -> Iterable[str]:
    """Logins whose revocation ran without an error in this run."""
    if t.plan is None or not t.executed:
        return
    for action, result in zip(t.plan.actions, t.results, strict=False):
        if action.kind == "revoke" and result.error is None and not result.unknown:
            yield action.login


def summary(overdue: list[Overdue], now: datetime) -> list[str]:
    """The lines `plan`, `status` and `apply` print: one per login, then the count."""
    if not overdue:
        return []
    count = len(overdue)
    return [f"overdue: {o.line(now)}" for o in overdue] + [
        f"{count} revocation{'s' if count != 1 else ''} overdue"]
