"""The catalog read while grant files are checked (apply.Prefetch): the same plan and errors
as reading it afterwards, and no lock or session left behind when a run stops early."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import psycopg
import pytest

from reconciler.apply import Prefetch, Run, group_roles, reconcile
from reconciler.engines.postgres import lock_key
from reconciler.snapshot import read_snapshot
from tests.helpers import grant, policy
from tests.integration.conftest import World

NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW is taken as each test starts, not when the module was imported: the commits are
    made with the real clock, and in a long run they would lie more than the allowed clock
    skew ahead of an import-time NOW (refused as dated in the future)."""
    monkeypatch.setattr(sys.modules[__name__], "NOW", datetime.now(timezone.utc))


def _prefetched(world: World, execute: bool, env: dict[str, str] | None = None) -> Run:
    env = env or world.env
    with Prefetch(execute=execute, env=env) as prefetch:
        snapshot = read_snapshot(world.repo.root, "HEAD", NOW, on_policy=prefetch.start)
        assert set(prefetch.fetches) == {"db1"}
        return reconcile(snapshot, NOW, execute=execute, env=env, prefetch=prefetch)


def _lock_free(world: World) -> bool:
    snapshot = read_snapshot(world.repo.root, "HEAD", NOW)
    key = lock_key(snapshot.policy.targets["db1"])
    with psycopg.connect(world.admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
        assert row is not None
        if row[0]:
            conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        return bool(row[0])


def _shown(run: Run) -> list[str]:
    return [s.shown for t in run.targets for s in t.statements]


def test_the_same_plan_and_result_as_without(world: World) -> None:
    world.add_grant("alice")
    planned = _prefetched(world, execute=False)
    assert _shown(planned) == _shown(world.run(execute=False, now=NOW))
    applied = _prefetched(world, execute=True)
    assert not applied.failed and applied.targets[0].executed
    assert world.role(world.login())
    assert not _prefetched(world, execute=True).has_changes
    assert _lock_free(world)


def test_a_failed_fetch_is_reported_like_a_direct_one(world: World) -> None:
    world.add_grant("alice")
    env = {world.dsn_env: "postgresql://nobody@127.0.0.1:1/postgres?connect_timeout=2"}
    prefetched = _prefetched(world, execute=True, env=env)
    direct = world.run(now=NOW, env=env)
    assert prefetched.targets[0].error == direct.targets[0].error
    assert "cannot connect" in str(prefetched.targets[0].error)


def test_a_held_lock_is_reported_like_a_direct_one(world: World) -> None:
    snapshot = read_snapshot(world.repo.root, "HEAD", NOW)
    with psycopg.connect(world.admin_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key(snapshot.policy.targets["db1"])])
        prefetched = _prefetched(world, execute=True)
    assert prefetched.targets[0].error == "another jitgrant run holds the lock"


def test_locks_are_released_when_the_run_stops_before_reconciling(world: World) -> None:
    snapshot = read_snapshot(world.repo.root, "HEAD", NOW)
    with pytest.raises(RuntimeError), Prefetch(execute=True, env=world.env) as prefetch:
        prefetch.start(snapshot.policy)
        prefetch.fetches["db1"].thread.join()  # type: ignore[union-attr]
        assert not _lock_free(world)
        raise RuntimeError("reading the grant files failed")
    assert _lock_free(world)


def test_a_fetch_for_other_group_roles_is_not_used(world: World) -> None:
    snapshot = read_snapshot(world.repo.root, "HEAD", NOW)
    target = snapshot.policy.targets["db1"]
    with Prefetch(execute=True, env=world.env) as prefetch:
        prefetch.start(snapshot.policy)
        assert prefetch.take(target, group_roles(snapshot) | {"other_group"}) is None
        assert _lock_free(world)  # its session was closed at once


def test_targets_sharing_a_server_and_a_prefix_take_turns_for_the_lock(world: World) -> None:
    """Both targets' locks are one and the same: neither may be locked ahead of its turn, or
    the other would find it held by its own run."""
    doc = policy(dsn_env=world.dsn_env, prefix=world.prefix, groups=(world.group,))
    doc["targets"]["db2"] = dict(doc["targets"]["db1"])
    world.repo.write("policies/main.yaml", doc)
    world.repo.write("grants/db1/alice.yaml", grant("alice"))
    world.repo.write("grants/db2/bob.yaml", grant("bob", target="db2"))
    world.repo.commit("two targets on one server and prefix")
    with Prefetch(execute=True, env=world.env) as prefetch:
        snapshot = read_snapshot(world.repo.root, "HEAD", NOW, on_policy=prefetch.start)
        assert not prefetch.fetches  # both take the ordinary way, one after the other
        run = reconcile(snapshot, NOW, execute=True, env=world.env, prefetch=prefetch)
    assert [t.error for t in run.targets] == [None, None]
    assert all(t.executed and not any(r.error for r in t.results) for t in run.targets)
    # (each target reports the other's login as one it leaves alone, as without prefetching)
    assert all("belongs to target" in p.message for p in run.problems)
    assert world.role(world.login("alice")) and world.role(world.login("bob"))
    assert _lock_free(world)
