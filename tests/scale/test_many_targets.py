"""10,000 grants of 1,000 people over 20 targets (20 namespaces on the machine's PostgreSQL,
each with its own DSN variable): apply creates exactly the granted logins, a second apply
changes nothing, and the number of exchanges with the server does not grow with the number
of logins beyond the statement batches themselves."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler.apply import Run, reconcile
from reconciler.engines.postgres import CHUNK
from reconciler.snapshot import read_snapshot
from tests.scale.conftest import Roles, RoundTrips, Shape, build, new_shape

TARGETS = 20
PEOPLE = 1_000
PER_PERSON = 10  # grants: 10,000


def spread(person: int) -> list[tuple[int, str]]:
    """Ten targets each, alternating halves: every target gets 500 grants."""
    return [(person % 2 + 2 * k, "readonly") for k in range(PER_PERSON)]


def one_each(person: int) -> list[tuple[int, str]]:
    return [(person, "readonly")]


def apply(root: Path, roles: Roles, shape: Shape, now: datetime) -> Run:
    snapshot = read_snapshot(root, "HEAD", now)
    assert not snapshot.problems, snapshot.problems[:3]
    run = reconcile(snapshot, now, execute=True, env=roles.env(shape))
    assert not run.failed, [(t.target.name, t.error) for t in run.targets] + run.problems[:3]
    return run


def batches(run: Run) -> int:
    """The statement batches the fast path sends: one per CHUNK statements, per target."""
    return sum(math.ceil(len(t.statements) / CHUNK) for t in run.targets if t.executed)


def test_ten_thousand_grants_over_twenty_targets(tmp_path: Path, roles: Roles,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    expires = now + timedelta(hours=4)
    trips = RoundTrips()

    # The same 20 targets with one grant each: what a target costs whatever its size.
    small = new_shape(TARGETS, TARGETS)
    roles.add(small)
    build(tmp_path / "small", small, one_each, expires)
    with trips.counting(monkeypatch):
        small_first = apply(tmp_path / "small", roles, small, now)
    small_first_trips = trips.total
    with trips.counting(monkeypatch):
        apply(tmp_path / "small", roles, small, now)
    small_noop_trips = trips.total

    big = new_shape(TARGETS, PEOPLE)
    roles.add(big)
    wanted = build(tmp_path / "big", big, spread, expires)
    assert len(wanted) == TARGETS * 500 == 10_000
    with trips.counting(monkeypatch):
        first = apply(tmp_path / "big", roles, big, now)
    first_trips = trips.total

    assert [t.target.name for t in first.targets] == [big.target(i) for i in range(TARGETS)]
    assert all(len(t.plan.actions) == 500 for t in first.targets if t.plan)
    assert {a.kind for t in first.targets if t.plan for a in t.plan.actions} == {"create"}
    found = roles.logins(big)
    assert set(found) == wanted | {big.group}
    del found[big.group]
    assert {(login, limit, until, member) for login, limit, until, member, _ in found.values()} \
        == {(True, 3, expires, True)}
    assert all(comment.startswith("jitgrant: t") for *_, comment in found.values())

    with trips.counting(monkeypatch):
        second = apply(tmp_path / "big", roles, big, now + timedelta(seconds=1))
    noop_trips = trips.total
    assert not second.has_changes
    assert not any(t.executed for t in second.targets)
    assert roles.logins(big) == {**found, big.group: roles.logins(big)[big.group]}

    # Bounded per target, whatever the number of logins: a no-op costs exactly what it costs
    # for one login per target (connect, server info, lock, one pipelined catalog read), and
    # 500 creations per target cost one batch of statements more than one creation did.
    assert noop_trips == small_noop_trips
    assert noop_trips <= 5 * TARGETS, noop_trips
    # Statements that carry verifiers are pipelined one query each (none shares a query string
    # with another login's, see postgres.query_strings): one exchange more per target, still
    # whatever the number of logins.
    assert first_trips - small_first_trips <= (batches(first) - batches(small_first)
                                               + TARGETS), (
        first_trips, small_first_trips, batches(first), batches(small_first))
