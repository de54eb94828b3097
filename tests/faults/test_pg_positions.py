"""PostgreSQL: `jitgrant apply` stopped at every statement of a creation, a drift repair and a
revocation, for real (a lock the test holds, then the connection cut or the process killed).
What is left gives no access that should not exist, and one more run converges.

Cutting the connection is tried at every position (PostgreSQL 18, password authentication, so
logging in is tried for real); killing the process at a representative subset (PostgreSQL 15):
after SIGKILL the server still runs the statement it was waiting on, then sees the client gone
and rolls the transaction back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.conftest import PgServer
from tests.faults.apply_proc import start_apply
from tests.faults.conftest import audit_record
from tests.faults.pgstop import Stop, Stopped, lock, stop_apply
from tests.integration.conftest import World

AUTHID = lock("pg_catalog.pg_authid", "EXCLUSIVE")
MEMBERS = lock("pg_catalog.pg_auth_members", "EXCLUSIVE")
COMMENTS = lock("pg_catalog.pg_shdescription", "EXCLUSIVE")
SETTINGS = lock("pg_catalog.pg_db_role_setting", "EXCLUSIVE")
DATABASES = lock("pg_catalog.pg_database", "ACCESS EXCLUSIVE")  # read by pg_stat_activity

CREATION = [Stop("CREATE ROLE", (AUTHID,)), Stop("GRANT", (MEMBERS,)),
            Stop("COMMENT ON ROLE", (COMMENTS,))]
DRIFT = [Stop("CONNECTION LIMIT 3 VALID UNTIL", (AUTHID,)), Stop(" RESET ", (SETTINGS,)),
         Stop("GRANT", (MEMBERS,)), Stop("COMMENT ON ROLE", (COMMENTS,))]
# {db2}: another database where the login owns a table; {main}: the admin connection's.
REVOCATION = [
    Stop("NOLOGIN VALID UNTIL '-infinity'", (AUTHID,)),
    Stop("pg_terminate_backend", (AUTHID, DATABASES)),  # lockout first needs pg_authid too
    # The disarm block revokes on the login's table, which writes pg_class (reading it, as
    # the listing before does, is not blocked).
    Stop("DO $jitgrant$", (lock("pg_catalog.pg_class", "EXCLUSIVE", "{db2}"),)),
    Stop("DO $jitgrant$", (lock("pg_catalog.pg_class", "EXCLUSIVE", "{main}"),)),
    Stop("REVOKE", (MEMBERS,)),
    Stop("REASSIGN OWNED", (lock("public.{table}", "ACCESS SHARE", "{db2}"),)),
    Stop("DROP OWNED", (lock("pg_catalog.pg_namespace", "EXCLUSIVE", "{db2}"),)),
    Stop("REASSIGN OWNED", (lock("public.{table}", "ACCESS SHARE", "{main}"),)),
    Stop("DROP OWNED", (lock("pg_catalog.pg_namespace", "EXCLUSIVE", "{main}"),)),
    Stop("DROP ROLE", (COMMENTS,)),
]


def positions(stops: list[Stop]) -> list[Any]:
    return [pytest.param(n, id=f"{n}-{stop.statement.split()[0].lower()}")
            for n, stop in enumerate(stops)]


def _cases(stops: list[Stop], killed: list[int]) -> list[Any]:
    """Cut at every position on PostgreSQL 18; SIGKILL at `killed` on PostgreSQL 15."""
    cut = [pytest.param("pg18", "cut", p.values[0], id=f"pg18-cut-{p.id}")
           for p in positions(stops)]
    kill = [pytest.param("pg15", "sigkill", p.values[0], id=f"pg15-sigkill-{p.id}")
            for p in positions(stops) if p.values[0] in killed]
    return cut + kill


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PgServer:
    """Overrides tests/conftest.py's: each case names its server."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@dataclass
class Login:
    name: str
    password: str


def _grant(world: World) -> Login:
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    return Login(world.login(), password)


def _can_log_in(world: World, login: Login) -> bool:
    """Tried for real; on a `trust` server (PostgreSQL 15 here) VALID UNTIL is not enforced,
    so that is checked in the catalog too (see _usable)."""
    try:
        psycopg.connect(world.server.login_dsn(login.name, login.password)).close()
    except psycopg.OperationalError:
        return False
    return True


def _usable(world: World, login: Login) -> bool:
    with world.server.conn() as c:
        row = c.execute("SELECT rolcanlogin AND (rolvaliduntil IS NULL OR rolvaliduntil > now())"
                        " FROM pg_roles WHERE rolname = %s", [login.name]).fetchone()
    in_catalog = bool(row and row[0])
    if world.server.scram:
        assert _can_log_in(world, login) == in_catalog
    return in_catalog


def _stop(world: World, stop: Stop, how: str, names: dict[str, str] | None = None) -> Stopped:
    names = {"main": "", **(names or {})}
    locks = tuple((db.format(**names) or None if db else None, text.format(**names))
                  for db, text in stop.locks)
    stopped = stop_apply(world.server, replace(stop, locks=locks), how,
                         lambda: start_apply(world.repo.root, world.env))
    if how == "cut":
        assert stopped.code == 1, stopped.output
        assert "connection lost" in stopped.output, stopped.output
        record = audit_record(world.repo.root, stopped.output)
        # Issue 12, finding 10: what really happened. Each stop is a lock wait before a
        # statement ran, so the transaction in flight was rolled back; only the sessions
        # phase runs outside a transaction (pg_terminate_backend): in doubt once sent.
        cut = "in_doubt" if stop.statement == "pg_terminate_backend" else "rolled_back"
        for action in record["actions"]:
            assert (action["status"], action["cut"]) == ("failed", cut), action
            assert action["error"].startswith("not done: "), action
            assert "the connection was lost (connection lost" in action["error"], action
    else:
        assert stopped.code == -9
    return stopped


def _converges(world: World) -> None:
    """One more run repairs everything; the run after it has nothing left to do."""
    run = world.run()
    assert not run.failed, [(t.error, t.results) for t in run.targets]
    assert world.run(execute=False).targets[0].plan.actions == ()  # type: ignore[union-attr]


def _check_positions(world: World, stops: list[Stop], position: int) -> None:
    """The plan is exactly the statements the positions name, in order: every one is tried."""
    shown = [s.shown for s in world.run(execute=False).targets[0].statements]
    assert len(shown) == len(stops), shown
    for stop, text in zip(stops, shown, strict=True):
        assert stop.statement in text, (stop.statement, text)
    assert 0 <= position < len(stops)


@pytest.mark.parametrize(("pg", "how", "position"), _cases(CREATION, [1]),
                         indirect=["pg"])
def test_creation_stopped_at_each_statement(world: World, how: str, position: int) -> None:
    login = _grant(world)
    _check_positions(world, CREATION, position)
    _stop(world, CREATION[position], how)
    assert world.role(login.name) is None  # one transaction: nothing of it is left
    _converges(world)
    assert _usable(world, login)


def _drift(world: World, login: Login) -> None:
    role = sql.Identifier(login.name)
    with world.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} VALID UNTIL 'infinity' CONNECTION LIMIT 50").format(role))
        c.execute(sql.SQL("ALTER ROLE {} SET work_mem = '1MB'").format(role))
        c.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(world.group), role))
        c.execute(sql.SQL("COMMENT ON ROLE {} IS 'jitgrant: db1: alice (readonly) state x'")
                  .format(role))


@pytest.mark.parametrize(("pg", "how", "position"), _cases(DRIFT, [2]), indirect=["pg"])
def test_drift_repair_stopped_at_each_statement(world: World, how: str, position: int) -> None:
    login = _grant(world)
    world.run()
    _drift(world, login)
    _check_positions(world, DRIFT, position)
    _stop(world, DRIFT[position], how)
    role = world.role(login.name)  # one transaction: exactly as drifted, no half repair
    assert role is not None
    assert (role["infinite"], role["rolconnlimit"], role["member_of"]) == (True, 50, [])
    _converges(world)
    role = world.role(login.name)
    assert role is not None and not role["infinite"] and role["rolconnlimit"] == 3
    assert role["member_of"] == [world.group]


@dataclass
class Revocation:
    login: Login
    db2: str
    main: str
    table: str
    session: psycopg.Connection[Any]


def _revocation(world: World) -> Revocation:
    """A login that owns a table in two databases (another, and the admin one), is a member of
    the group and has a session open; then its grant file is removed."""
    world.write_policy(reassign_owned_to=world.owner)
    login = _grant(world)
    world.run()
    db2, main = world.create_database(), str(world.server.params.get("dbname", "postgres"))
    table = f"{world.prefix}evidence"
    for database in (db2, main):
        with world.server.conn(database) as c:
            c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
                sql.Identifier(login.name)))
        with psycopg.connect(world.server.login_dsn(login.name, login.password, database),
                             autocommit=True) as c:
            c.execute(sql.SQL("CREATE TABLE public.{} (id int)").format(sql.Identifier(table)))
    session = psycopg.connect(world.server.login_dsn(login.name, login.password, main),
                              autocommit=True)
    world.repo.remove("grants/db1/alice.yaml")
    world.repo.commit("remove alice's grant")
    return Revocation(login, db2, main, table, session)


def _sessions(world: World, login: Login) -> int:
    with world.server.conn() as c:
        row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                        [login.name]).fetchone()
    return int(str(row[0])) if row else 0


@pytest.mark.parametrize(("pg", "how", "position"), _cases(REVOCATION, [0, 1, 5, 9]),
                         indirect=["pg"])
def test_revocation_stopped_at_each_statement(world: World, how: str, position: int) -> None:
    r = _revocation(world)
    try:
        _check_positions(world, REVOCATION, position)
        _stop(world, REVOCATION[position], how,
              {"db2": r.db2, "main": r.main, "table": r.table})
        role = world.role(r.login.name)
        assert role is not None
        if position == 0:
            assert role["rolcanlogin"]  # stopped before the first statement: untouched
        else:  # locked out for good, whatever else was left undone
            assert not role["rolcanlogin"] and not _usable(world, r.login)
            with world.server.conn() as c:
                row = c.execute("SELECT rolvaliduntil = '-infinity' FROM pg_roles"
                                " WHERE rolname = %s", [r.login.name]).fetchone()
            assert row == (True,)
        if how == "cut":  # the phases before the stop are committed, the one stopped is not
            assert _sessions(world, r.login) == (1 if position <= 1 else 0)
            assert role["member_of"] == ([world.group] if position <= 4 else [])
        _converges(world)
        assert world.role(r.login.name) is None and _sessions(world, r.login) == 0
        for database in (r.db2, r.main):
            with world.server.conn(database) as c:
                owner = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s",
                                  [r.table]).fetchone()
            assert owner == (world.owner,), database
    finally:
        r.session.close()


LEAST_PRIVILEGE = [Stop("REASSIGN OWNED", (lock("public.notes", "ACCESS SHARE", "{db2}"),)),
                   Stop("DROP ROLE", (COMMENTS,))]


@pytest.mark.parametrize("position", [0, 1], ids=["reassign-owned", "drop-role"])
def test_revocation_without_superuser_stopped_after_the_strip(lp_world: World,
                                                              position: int) -> None:
    """PostgreSQL 16+ with a CREATEROLE reconciler: the disarm phase makes the reconciler a
    member of the login (to move its objects) and commits. Stopped after that, the next run
    must cope with the membership it left behind."""
    w = lp_world
    login = _grant(w)
    assert not w.run().failed
    db2 = w.create_database()
    with w.server.conn(db2) as c:
        c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(w.group)))
    with psycopg.connect(w.server.login_dsn(login.name, login.password, db2),
                         autocommit=True) as c:
        c.execute("CREATE TABLE notes (id int)")
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("done")
    shown = [s.shown for s in w.run(execute=False).targets[0].statements]
    assert any("WITH INHERIT TRUE, SET FALSE" in s for s in shown), shown
    _stop(w, LEAST_PRIVILEGE[position], "cut", {"db2": db2})
    assert not _usable(w, login)
    _converges(w)
    assert w.role(login.name) is None
    with w.server.conn(db2) as c:
        owner = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'").fetchone()
    assert owner == (w.owner,)
