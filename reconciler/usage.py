"""When access was used, on the query side (issue #15): the sessions and counters the audit
records carry (see sessions.py for when a record is written), per access period.

A period's samples are the records that read its target's sessions (`sampled`) from the run
that granted it to the run that revoked it, both included: each is taken before the run
changes anything, so the revoking run still sees the sessions it then ends. Between two
records the sessions and counters were as the earlier one says: a run that sees the same
writes no record.

- `used`: true when a session of the login was seen, when the revocation ended one, or when
  a counter (pg_stat_statements calls, performance_schema connections) grew between samples;
  false when samples were taken and none of that happened; null when no sample was taken in
  the period (records written before sessions were recorded).
- `first_used`: the earliest start of a session seen (PostgreSQL gives it exactly; on
  MySQL/MariaDB the time of the first record that lists the connection, when it was first
  seen). `last_seen`: the latest record that shows one open, or the revocation that ended
  one. Counters alone tell that the login was used, not when.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from .timeutil import iso, record_time_or_none

if TYPE_CHECKING:
    from .auditlog import AccessPeriod


@dataclass(frozen=True)
class SeenSession:
    """A session as a record lists it (top-level `sessions`, or an action's `ended_sessions`)."""

    id: str
    started: datetime | None
    client: str | None = None
    application: str | None = None
    database: str | None = None


@dataclass(frozen=True)
class Sample:
    """What one record saw of one target: its logins' sessions and counters."""

    at: datetime  # the run's start, as the record's file name
    target: str
    sessions: dict[str, list[SeenSession]] = field(default_factory=dict)  # login -> open ones
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)  # login -> (calls, conns)


def samples(data: dict[str, Any], at: datetime) -> list[Sample]:
    """A record's samples, one per target it read (none for records written before)."""
    out = []
    for t in data.get("targets", []):
        if not t.get("sampled"):
            continue
        name = t["target"]
        sample = Sample(at, name)
        for s in data.get("sessions", []):
            if s["target"] == name:
                sample.sessions.setdefault(s["login"], []).append(session(s))
        for u in data.get("usage", []):
            if u["target"] == name:
                sample.counters[u["login"]] = (u["calls"] or 0, u["connections_total"] or 0)
        out.append(sample)
    return out


def session(s: dict[str, Any]) -> SeenSession:
    return SeenSession(s["id"], record_time_or_none(s["started"]), s.get("client"),
                       s.get("application"), s.get("database"))


@dataclass
class PeriodUsage:
    sampled: bool = False
    # (id, started) -> [first seen, last seen, the session]
    seen: dict[tuple[str, datetime | None], list[Any]] = field(default_factory=dict)
    counters_grew: bool = False
    sessions_ended: int = 0

    def note(self, s: SeenSession, at: datetime) -> None:
        key = (s.id, s.started)
        if key in self.seen:
            self.seen[key][1] = max(self.seen[key][1], at)
        else:
            self.seen[key] = [at, at, s]

    @property
    def used(self) -> bool | None:
        if self.seen or self.counters_grew or self.sessions_ended:
            return True
        return False if self.sampled else None

    def starts(self) -> list[datetime]:
        """Each session's start, or when it was first seen where the server keeps none."""
        return [s.started or first for first, _, s in self.seen.values()]

    def row(self) -> dict[str, Any]:
        starts = self.starts()
        clients = sorted({s.client for _, _, s in self.seen.values() if s.client})
        return {"used": self.used, "first_used": iso(min(starts)) if starts else None,
                "last_seen": iso(max(last for _, last, _ in self.seen.values()))
                if self.seen else None,
                "sessions_seen": len(self.seen), "clients": clients,
                "sessions_ended": self.sessions_ended,
                "judged_by": "sessions" if starts else "grant"}


class UsageIndex:
    """The samples of every record, by target, in time order."""

    def __init__(self, found: Iterable[Sample]) -> None:
        self.by_target: dict[str, list[Sample]] = {}
        for sample in sorted(found, key=lambda s: s.at):
            self.by_target.setdefault(sample.target, []).append(sample)

    def of(self, p: AccessPeriod) -> PeriodUsage:
        out = PeriodUsage(sessions_ended=p.sessions_ended)
        start = p.granted_at or datetime.min.replace(tzinfo=timezone.utc)
        end = p.ended_at or datetime.max.replace(tzinfo=timezone.utc)
        window = [s for s in self.by_target.get(p.target, []) if start <= s.at <= end]
        out.sampled = bool(window) or p.ended_sessions is not None
        for s in window:
            for one in s.sessions.get(p.login, ()):
                out.note(one, s.at)
        if window:
            first = window[0].counters.get(p.login, (0, 0))
            out.counters_grew = any(
                any(now > then for now, then in zip(s.counters.get(p.login, (0, 0)), first,
                                                    strict=True)) for s in window[1:])
        for one in p.ended_sessions or ():
            assert p.ended_at is not None
            out.note(one, p.ended_at)
        return out


def access_rows(periods: Iterable[AccessPeriod], index: UsageIndex,
                row_of: Callable[[AccessPeriod], dict[str, Any]],
                after_hours: Callable[[datetime], bool] | None, unused: bool
                ) -> list[dict[str, Any]]:
    """The access view's rows with their use. `after_hours(t)`: keep the periods with a
    session started (or first seen) then, or, where no session is known, granted or changed
    then (`judged_by` says which). `unused`: only periods granted and sampled, never seen used."""
    rows = []
    for p in periods:
        u = index.of(p)
        if unused and (u.used is not False or p.granted_at is None):
            continue
        if after_hours is not None and not _after_hours(p, u, after_hours):
            continue
        rows.append({**row_of(p), **u.row()})
    return rows


def _after_hours(p: AccessPeriod, u: PeriodUsage, outside: Callable[[datetime], bool]) -> bool:
    starts = u.starts()
    if starts:
        return any(outside(t) for t in starts)
    return any(outside(e.at) for e in p.changes)


def zone_judge(zone: tzinfo, after_hours: Callable[[datetime, tzinfo], bool]
               ) -> Callable[[datetime], bool]:
    return lambda at: after_hours(at, zone)
