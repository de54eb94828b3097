"""Killing apply mid-way leaves the server before or after the change, never in between in a
way that grants access; the next run converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.integration.conftest import World

KILLS = ["terminate-backend", "sigkill-process"]


def _start_apply(world: World) -> subprocess.Popen[str]:
    env = {**os.environ, **world.env}
    return subprocess.Popen([sys.executable, "-m", "reconciler.cli", "apply", "--no-commit",
                             "--repo", str(world.repo.root)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _blocked_backend(world: World, database: str | None = None) -> int:
    """Wait until a jitgrant backend waits on a lock (in `database` if given); its pid."""
    deadline = time.monotonic() + 20
    with world.server.conn() as c:
        while time.monotonic() < deadline:
            row = c.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'jitgrant'"
                " AND wait_event_type = 'Lock' AND (%s::text IS NULL OR datname = %s)",
                [database, database]).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("apply never blocked")


def _kill(how: str, world: World, proc: subprocess.Popen[str], pid: int) -> None:
    if how == "terminate-backend":
        with world.server.conn() as c:
            c.execute("SELECT pg_terminate_backend(%s)", [pid])
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _with_lock(world: World, statement: str, database: str | None,
               during: Callable[[], None]) -> None:
    with world.server.conn(database) as holder:
        with holder.transaction():
            holder.execute(statement)
            during()


def _kill_while_blocked(world: World, how: str, lock: str, database: str | None = None) -> int:
    proc = _start_apply(world)
    code: list[int] = []

    def during() -> None:
        pid = _blocked_backend(world, database)
        _kill(how, world, proc, pid)
        code.append(proc.returncode)

    _with_lock(world, lock, database, during)
    return code[0]


@pytest.mark.parametrize("how", KILLS)
def test_killed_during_creation_leaves_nothing_then_converges(world: World, how: str) -> None:
    world.add_grant("alice")
    world.add_grant("bob", grantee="bob")
    code = _kill_while_blocked(world, how, "LOCK TABLE pg_catalog.pg_authid IN EXCLUSIVE MODE")
    assert code != 0
    assert world.role(world.login()) is None and world.role(world.login("bob")) is None
    assert not world.run().failed
    assert world.role(world.login()) is not None and world.role(world.login("bob")) is not None
    assert world.run().targets[0].plan.actions == ()  # type: ignore[union-attr]


@pytest.mark.parametrize("how", KILLS)
def test_killed_before_lockout_keeps_the_grant_then_revokes(world: World, how: str) -> None:
    world.add_grant()
    world.run()
    world.repo.remove("grants/db1/alice.yaml")
    world.repo.commit("remove")
    code = _kill_while_blocked(world, how, "LOCK TABLE pg_catalog.pg_authid IN EXCLUSIVE MODE")
    assert code != 0
    role = world.role(world.login())
    assert role is not None and role["rolcanlogin"]  # before: untouched
    assert not world.run().failed
    assert world.role(world.login()) is None


@pytest.mark.parametrize("how", KILLS)
def test_killed_while_moving_objects_leaves_login_locked_then_converges(world: World,
                                                                         how: str) -> None:
    world.write_policy(reassign_owned_to=world.owner)
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    world.run()
    login = world.login()
    second = world.create_database()
    with world.server.conn(second) as c:
        c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(login)))
    with psycopg.connect(world.server.login_dsn(login, password, second),
                         autocommit=True) as c:
        c.execute("CREATE TABLE evidence (id int)")
    world.repo.remove("grants/db1/alice.yaml")
    world.repo.commit("remove")
    code = _kill_while_blocked(world, how, "LOCK TABLE evidence IN ACCESS EXCLUSIVE MODE",
                               second)
    assert code != 0
    role = world.role(login)
    assert role is not None and not role["rolcanlogin"]  # locked out: no usable access left
    run = world.run()
    assert not run.failed, run.targets[0].results
    assert world.role(login) is None
    with world.server.conn(second) as c:
        row = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'evidence'")
        assert row.fetchone() == (world.owner,)
