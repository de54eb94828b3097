"""50,000 grants on one target (5,000 people, ten access levels each), without a database:
`jitgrant plan --offline` on the whole repository, and the pure diff against server states
built in memory. Applying 50,000 logins is the bench's job (`python -m bench`)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.model import ActualRole, ActualState, DesiredState
from reconciler.plan import diff, desired_state, marker_comment
from reconciler.snapshot import read_snapshot
from tests.scale.conftest import Shape, build, new_shape

PEOPLE = 5_000
LEVELS = tuple(f"level{i}" for i in range(10))
GRANTS = PEOPLE * len(LEVELS)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
EXPIRES = NOW + timedelta(hours=4)
SLICE = 1_000  # logins changed in each way below


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Shape, set[str]]:
    shape = new_shape(1, PEOPLE, LEVELS)
    root = tmp_path_factory.mktemp("fifty") / "access"
    # The commit is dated NOW, the time the tests read it at: built later with the real clock,
    # in a long run it would lie more than the allowed skew ahead of NOW.
    with pytest.MonkeyPatch.context() as mp:
        for variable in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
            mp.setenv(variable, NOW.isoformat())
        logins = build(root, shape, lambda p: [(0, level) for level in LEVELS], EXPIRES)
    assert len(logins) == GRANTS
    return root, shape, logins


def test_plan_offline(big: tuple[Path, Shape, set[str]]) -> None:
    root, shape, logins = big
    result = CliRunner().invoke(main, ["plan", "--offline", "--repo", str(root)],
                                catch_exceptions=False)
    assert result.exit_code == 2, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"target t00 (postgres): {GRANTS} changes"
    creates = {line.split()[2] for line in lines if line.startswith("  + create ")}
    assert creates == logins
    statements = Counter(line.split()[0] for line in lines if line.startswith("      "))
    assert statements == {"CREATE": GRANTS, "GRANT": GRANTS, "COMMENT": GRANTS}


def in_sync(desired: DesiredState, group: str) -> dict[str, ActualRole]:
    """What a server holds right after applying `desired`."""
    target = desired.target.name
    return {name: ActualRole(name=name, valid_until=want.expires, connection_limit=3,
                             comment=marker_comment(want, target), member_of=frozenset([group]))
            for name, want in desired.logins.items()}


def state(roles: dict[str, ActualRole], group: str) -> ActualState:
    return ActualState(roles=MappingProxyType(roles), existing_groups=frozenset([group]),
                       admin="jitgrant_admin", admin_is_superuser=False, database="postgres",
                       database_owners=MappingProxyType({"postgres": "postgres"}))


def test_pure_diff(big: tuple[Path, Shape, set[str]]) -> None:
    root, shape, logins = big
    snapshot = read_snapshot(root, "HEAD", NOW)
    assert not snapshot.problems, snapshot.problems[:3]
    target = snapshot.policy.targets["t00"]
    desired = desired_state(snapshot, target, NOW)
    assert set(desired.logins) == logins
    synced = in_sync(desired, shape.group)

    # In sync: nothing to do.
    plan = diff(desired, state(synced, shape.group), NOW)
    assert plan.actions == () and plan.problems == ()

    # Some logins missing, some drifted, some unknown, some left by removed grants, and roles
    # outside the namespace that must be ignored.
    names = sorted(synced)
    missing, drifted = names[:SLICE], names[SLICE:2 * SLICE]
    roles = {n: r for n, r in synced.items() if n not in missing}
    for name in drifted:
        roles[name] = dataclasses.replace(roles[name], connection_limit=10)
    unknown = [f"{shape.prefix(0)}stranger{i}_x" for i in range(SLICE)]
    removed = [f"{shape.prefix(0)}gone{i}_{LEVELS[0]}" for i in range(SLICE)]
    left_by = next(iter(desired.logins.values()))
    for name in unknown:
        roles[name] = ActualRole(name=name)
    for name in removed:
        roles[name] = ActualRole(name=name, comment=marker_comment(left_by, "t00"))
    for i in range(SLICE):
        roles[f"app_{i}"] = ActualRole(name=f"app_{i}")
    plan = diff(desired, state(roles, shape.group), NOW)
    by = Counter((a.kind, a.cause) for a in plan.actions)
    assert by == {("create", "granted"): SLICE, ("update", "drift"): SLICE,
                  ("revoke", "unknown"): SLICE, ("revoke", "removed"): SLICE}
    assert {a.login for a in plan.actions if a.kind == "create"} == set(missing)
    assert {a.login for a in plan.actions if a.kind == "update"} == set(drifted)
    assert all(a.changes.describe() == ["connection limit"] for a in plan.actions
               if a.kind == "update" and a.changes)
    assert {a.login for a in plan.actions if a.kind == "revoke"} == set(unknown) | set(removed)
    assert plan.problems == ()

    # Every grant expired: 50,000 revocations, each with its cause and grant file.
    later = EXPIRES + timedelta(minutes=1)
    expired = diff(desired_state(snapshot, target, later), state(synced, shape.group), later)
    assert len(expired.actions) == GRANTS
    assert {(a.kind, a.cause) for a in expired.actions} == {("revoke", "expired")}
    assert all(len(a.grant_files) == 1 for a in expired.actions)
