"""A session of another role holds jitgrant's lock across a revocation that is due.

Any role may take any advisory lock (`pg_advisory_lock`, `GET_LOCK`), the temporary login
itself included: the lock keeps jitgrant's own runs apart and nothing more. Before this was
fixed, such a session made every run report "another jitgrant run holds the lock" and revoke
nothing. Now the holder is ended when the reconciler may end it (the run goes on, and fails
naming it); when it may not, the due revocations still run, without the lock, and the run fails
naming the holder. A holder of the reconciler's own role is another run, as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.engines.mysql import account, lock_name
from reconciler.engines.postgres import lock_key
from tests.helpers import utc
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld
from tests.integration.test_mysql_least_privilege import lp  # noqa: F401 - a fixture


def _active_login(w: World, expires_in: timedelta = timedelta(hours=1)) -> tuple[str, str]:
    password = new_password()
    w.add_grant(verifier=scram_sha256_verifier(password), expires=utc() + expires_in)
    run = w.run()
    assert not run.failed, (run.targets[0].error, run.problems)
    return w.login(), password


def _holds_lock(w: World, user: str, password: str) -> psycopg.Connection[Any]:
    target = w.run(execute=False).targets[0].target
    conn = psycopg.connect(w.server.login_dsn(user, password), autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", [lock_key(target)])
    return conn


def _ended(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_the_expired_login_holding_the_lock_is_ended_and_dropped(world: World) -> None:
    login, password = _active_login(world)
    holder = _holds_lock(world, login, password)
    try:
        run = world.run(now=utc(hours=2))  # past the grant's end
    finally:
        gone = _ended(holder)
        holder.close()
    error = run.targets[0].error or ""
    assert run.failed and f"role {login} (session " in error, error
    assert "not by a jitgrant run" in error and "another jitgrant run" not in error
    assert gone
    assert world.role(login) is None
    assert [a.kind for a in run.targets[0].plan.actions] == ["revoke"]  # type: ignore[union-attr]
    assert not world.run(now=utc(hours=2)).failed  # the next run is quiet


def test_any_login_holding_the_lock_is_ended_and_the_run_goes_on(world: World) -> None:
    outsider = f"{world.group}_x"  # outside the namespace: a plain login
    password = new_password()
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(outsider), sql.Literal(password)))
    try:
        holder = _holds_lock(world, outsider, password)
        world.add_grant()
        run = world.run()
        assert _ended(holder)
        holder.close()
        assert run.failed and f"role {outsider} (session " in (run.targets[0].error or "")
        assert world.role(world.login()) is not None  # the lock was free: the grant was made
    finally:
        with world.server.conn() as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(outsider)))


def test_a_holder_the_reconciler_may_not_end_cannot_stop_revocations(lp_world: World) -> None:
    """A superuser's session cannot be ended with pg_signal_backend: the expired login is still
    locked out, its sessions ended and it is dropped; the new grant waits for the lock."""
    w = lp_world
    login, password = _active_login(w, timedelta(minutes=30))
    session = psycopg.connect(w.server.login_dsn(login, password), autocommit=True)
    w.add_grant("bob", grantee="bob")
    target = w.run(execute=False).targets[0].target
    with w.server.conn() as holder:  # a superuser
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key(target)])
        run = w.run(now=utc(hours=1))
        assert not _ended(holder)
    error = run.targets[0].error or ""
    assert run.failed and "only the due revocations ran" in error, error
    assert "(session " in error and "another jitgrant run" not in error
    assert _ended(session)
    session.close()
    assert w.role(login) is None
    assert w.role(w.login("bob")) is None  # nothing is created without the lock
    assert [a.kind for a in run.targets[0].plan.actions] == ["revoke"]  # type: ignore[union-attr]
    later = w.run(now=utc(hours=1))
    assert not later.failed and w.role(w.login("bob")) is not None


def test_the_reconcilers_own_role_holding_it_is_another_run(world: World) -> None:
    world.add_grant()
    target = world.run(execute=False).targets[0].target
    with psycopg.connect(world.admin_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key(target)])
        run = world.run()
        assert run.targets[0].error == "another jitgrant run holds the lock"
        assert not _ended(holder)
    assert world.role(world.login()) is None


@pytest.mark.mysql
def test_mysql_the_login_holding_the_lock_is_killed_and_dropped(my: MyWorld) -> None:
    my.add_grant()
    assert not my.run().failed
    login = my.login()
    target = my.run(execute=False).targets[0].target
    holder = my.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", [lock_name(target)])
    my.repo.remove("grants/db1/alice.yaml")
    my.repo.commit("access ends")
    run = my.run()
    error = run.targets[0].error or ""
    assert run.failed and f"role {login} (session " in error, error
    assert my.account(login) is None
    with pytest.raises(Exception):  # noqa: B017 - the driver's error for a killed connection
        with holder.cursor() as cur:
            cur.execute("SELECT 1")
    assert not my.run().failed


@pytest.mark.mysql
def test_mysql_a_holder_that_cannot_be_killed_cannot_stop_revocations(
        lp: MyWorld) -> None:  # noqa: F811
    """The README's reconciler account without CONNECTION ADMIN (it may kill only its own
    connections): root's session holds the lock, and the login whose grant ended is still
    locked out and dropped; the new grant waits for the lock."""
    lp.server.sql(f"REVOKE CONNECTION ADMIN ON *.* FROM {account(lp.prefix + 'reconciler')}")
    lp.add_grant()
    assert not lp.run().failed
    login = lp.login()
    target = lp.run(execute=False).targets[0].target
    with lp.server.conn() as holder, holder.cursor() as cur:  # root
        cur.execute("SELECT GET_LOCK(%s, 0)", [lock_name(target)])
        lp.repo.remove("grants/db1/alice.yaml")
        lp.repo.commit("access ends")
        lp.add_grant("bob", grantee="bob")
        run = lp.run()
    error = run.targets[0].error or ""
    assert run.failed and "only the due revocations ran" in error, error
    assert lp.account(login) is None
    assert lp.account(lp.login("bob")) is None
