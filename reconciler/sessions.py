"""When access was used, on the apply side (issue #15): the sessions and counters a run read
with the catalog, as the audit record carries them, and when a run that changed nothing still
writes a record: when what it saw of them differs from the newest record that saw the target.

A sample sees only what is open when the catalog is read: see docs/operations.md, "When
access was used"."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import records
from .errors import one_line
from .model import SESSION_CAP, ActualState, DesiredState, OpenSession
from .plan import is_managed, protection
from .timeutil import iso

if TYPE_CHECKING:
    from .apply import Run, TargetRun

TEXT_LIMIT = 120  # characters kept of a client's own words (application name, address, ...)
LOOK_BACK = 50  # records read, newest first, for a target's last sample


def clean(value: Any) -> str | None:
    """A text the client chose, made safe to carry: one line (control characters escaped),
    at most TEXT_LIMIT characters. CSV and HTML output escape it again as they must."""
    if value is None:
        return None
    text = one_line(str(value))
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def recorded_logins(desired: DesiredState | None, actual: ActualState,
                    names: Iterable[str]) -> set[str]:
    """Those of `names` whose sessions are recorded: jitgrant's own (a grant maps to it, or it
    carries jitgrant's marker) and any other in the namespace that apply would manage (and
    revoke). Never the reconciler's own role, never_touch, pg_ roles, another target's
    logins, nor anything outside the namespace."""
    out: set[str] = set()
    if desired is None:
        return out
    for name in set(names):
        role = actual.roles.get(name)
        if role is None:
            continue
        ours = name in desired.logins or name in desired.known
        why = protection(role, desired.target, actual, ours)
        if why is None or ((ours or is_managed(role)) and _only_powerful(why)):
            out.add(name)
    return out


def _only_powerful(why: str) -> bool:
    """A login of ours that was made a superuser is still ours: its use is recorded."""
    return why.startswith(("it is a superuser", "it administers the server"))


def _names(desired: DesiredState | None, login: str) -> tuple[str | None, str | None]:
    if desired is None:
        return None, None
    want = desired.logins.get(login)
    if want is not None:
        return want.grantee, want.access
    known = desired.known.get(login)
    return (known.grantee, known.access) if known is not None else (None, None)


def session_dict(s: OpenSession, with_activity: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": s.id, "started": iso(s.started)}
    if with_activity:
        out["last_active"] = iso(s.last_active)
    out.update(client=s.client, application=s.application, database=s.database)
    return out


def target_sessions(t: TargetRun) -> list[dict[str, Any]]:
    """The record's `sessions` entries of one target run (none when it was not read)."""
    actual = t.actual
    if actual is None or not actual.sampled:
        return []
    keep = recorded_logins(t.desired, actual, (s.login for s in actual.open_sessions))
    out = []
    for s in actual.open_sessions:
        if s.login in keep:
            grantee, access = _names(t.desired, s.login)
            out.append({"target": t.target.name, "login": s.login, "grantee": grantee,
                        "access": access, **session_dict(s)})
    return out


def target_usage(t: TargetRun) -> list[dict[str, Any]]:
    """The record's `usage` entries: a login with sessions open or a counter above zero."""
    actual = t.actual
    if actual is None or not actual.sampled:
        return []
    keep = recorded_logins(t.desired, actual, actual.usage)
    out = []
    for login, u in sorted(actual.usage.items()):
        if login in keep and (u.sessions_open or u.calls or u.connections_total):
            out.append({"target": t.target.name, "login": login, "calls": u.calls,
                        "connections_total": u.connections_total,
                        "sessions_open": u.sessions_open})
    return out


def ended_sessions(sessions: Iterable[OpenSession]) -> list[dict[str, Any]]:
    """An action's `ended_sessions`: at most SESSION_CAP (sessions_ended counts them all)."""
    return [session_dict(s, with_activity=False) for s in list(sessions)[:SESSION_CAP]]


def sampled(t: TargetRun) -> bool:
    return t.actual is not None and t.actual.sampled


# -- when a run that changed nothing writes a record ------------------------------------------
# What a target's sample says, for comparing: its sessions by (login, id, started), and its
# counters. Last activity changes with every query and is not compared: a session held open
# across runs writes one record when it is first seen, and one when it is gone.

Seen = tuple[frozenset[tuple[Any, ...]], frozenset[tuple[Any, ...]]]


def _seen(sessions: Iterable[dict[str, Any]], usage: Iterable[dict[str, Any]]) -> Seen:
    keys = frozenset((s.get("login"), s.get("id"), s.get("started")) for s in sessions)
    counters = frozenset((u.get("login"), u.get("calls"), u.get("connections_total"),
                          u.get("sessions_open")) for u in usage)
    return keys, counters


def run_seen(run: Run) -> dict[str, Seen]:
    """What this run saw, per target it sampled."""
    return {t.target.name: _seen(target_sessions(t), target_usage(t))
            for t in run.targets if sampled(t)}


def usage_changed(root: Path, run: Run) -> bool:
    """True when, for a target this run sampled, the sessions or counters differ from the
    newest record that sampled it (nothing differs from "no record" when nothing is open and
    no counter is above zero). Records of one second sort by run id, not by time: when
    several of the newest second sampled the target, differing from any is a difference."""
    now = run_seen(run)
    if not now:
        return False
    before = newest_seen(root, set(now))
    empty: Seen = (frozenset(), frozenset())
    return any(seen != then for name, seen in now.items()
               for then in before.get(name, [empty]))


def newest_seen(root: Path, targets: set[str]) -> dict[str, list[Seen]]:
    """Per target, what the newest records that sampled it saw (those of its newest second),
    reading the records newest first, each only up to its actions, at most LOOK_BACK."""
    found: dict[str, list[Seen]] = {}
    done: set[str] = set()
    second = None
    for path, data in records.newest(root / "audit", LOOK_BACK):
        if path.name[:16] != second:  # <yyyymmddTHHMMSSZ>-<run id>.json
            done |= set(found)
            second = path.name[:16]
            if done >= targets:
                break
        sampled_here = {str(t.get("target")) for t in records.dicts(data.get("targets"))
                        if t.get("sampled")}
        for target in sampled_here & (targets - done):
            found.setdefault(target, []).append(_seen(
                (s for s in records.dicts(data.get("sessions")) if s.get("target") == target),
                (u for u in records.dicts(data.get("usage")) if u.get("target") == target)))
    return found


