"""The reconciler as a non-superuser (CREATEROLE), set up with the README's statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.conftest import PgServer
from tests.helpers import utc
from tests.integration.conftest import World

# The statements the README gives for PostgreSQL 16 and later, with {placeholders}.
SETUP = [
    "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD {password}",
    "GRANT {group} TO {admin} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE",
    "GRANT {owner} TO {admin} WITH INHERIT TRUE",
    "GRANT pg_signal_backend TO {admin}",
    "GRANT pg_read_all_stats TO {admin}",
]
# And for PostgreSQL 15 and earlier, where CREATEROLE manages every non-superuser role.
SETUP_15 = [
    "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD {password}",
    "GRANT {owner} TO {admin}",
    "GRANT pg_signal_backend TO {admin}",
    "GRANT pg_read_all_stats TO {admin}",
]


@contextmanager
def least_privilege_world(server: PgServer, root: Path) -> Iterator[World]:
    w = World(server, root)
    # Named inside the namespace on purpose: the reconciler must never touch its own role.
    admin = f"{w.prefix}reconciler"
    password = new_password()
    w.admin_dsn = server.login_dsn(admin, password)
    names = {"admin": sql.Identifier(admin), "group": sql.Identifier(w.group),
             "owner": sql.Identifier(w.owner), "password": sql.Literal(password)}
    with server.conn() as c:
        for statement in SETUP if server.version >= 160000 else SETUP_15:
            c.execute(sql.SQL(statement).format(**names))
    w.write_policy(reassign_owned_to=w.owner)
    try:
        yield w
    finally:
        w.cleanup()
        with server.conn() as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(names["admin"]))


@pytest.fixture
def lp_world(pg18: PgServer, tmp_path: Path) -> Iterator[World]:
    """PostgreSQL 18, for what only 16 and later refuse a CREATEROLE role."""
    with least_privilege_world(pg18, tmp_path / "repo") as w:
        yield w


@pytest.fixture
def lp_any_world(pg: PgServer, tmp_path: Path) -> Iterator[World]:
    """The machine's PostgreSQL 15 and the embedded PostgreSQL 18."""
    with least_privilege_world(pg, tmp_path / "repo") as w:
        yield w


def test_life_cycle_without_superuser(lp_any_world: World) -> None:
    w = lp_any_world
    with psycopg.connect(w.admin_dsn) as c:
        row = c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == (False,)
    password = new_password()
    w.add_grant(verifier=scram_sha256_verifier(password))
    run = w.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results, run.problems)
    login = w.login()
    second = w.create_database()
    with w.server.conn(second) as c:  # privileges go to the group role, as they should
        c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(w.group)))
    with psycopg.connect(w.server.login_dsn(login, password, second), autocommit=True) as c:
        c.execute("CREATE TABLE notes (id int)")
    # Drift a CREATEROLE role can repair: expiry and connection limit.
    with w.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} VALID UNTIL 'infinity' CONNECTION LIMIT 50").format(
            sql.Identifier(login)))
    repaired = w.run()
    assert not repaired.failed and repaired.targets[0].plan is not None
    assert [a.cause for a in repaired.targets[0].plan.actions] == ["drift"]
    session = psycopg.connect(w.server.login_dsn(login, password), autocommit=True)
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("done")
    run = w.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results)
    assert run.targets[0].results[0].sessions_ended == 1
    session.close()
    assert w.role(login) is None
    with w.server.conn(second) as c:
        row = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'").fetchone()
        assert row == (w.owner,)
    assert w.run().targets[0].plan.actions == ()  # type: ignore[union-attr]
    admin = w.role(w.prefix + "reconciler")
    assert admin is not None and admin["rolcanlogin"]


def test_privilege_granted_by_someone_else_leaves_login_locked_out(lp_world: World) -> None:
    """A superuser's direct GRANT to a login cannot be revoked by a CREATEROLE role: the drop
    fails and is reported, but the login can no longer log in and its sessions are ended."""
    w = lp_world
    password = new_password()
    w.add_grant(verifier=scram_sha256_verifier(password))
    assert not w.run().failed
    login = w.login()
    second = w.create_database()
    with w.server.conn(second) as c:
        c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(login)))
    session = psycopg.connect(w.server.login_dsn(login, password), autocommit=True)
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("done")
    run = w.run()
    assert run.failed
    result = run.targets[0].results[0]
    assert "cannot be dropped" in (result.error or "") and result.sessions_ended == 1
    role = w.role(login)
    assert role is not None and not role["rolcanlogin"]
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.server.login_dsn(login, password))


def test_a_refused_repair_does_not_undo_the_expiry_repair(lp_world: World) -> None:
    """A superuser's GRANT to a login cannot be revoked by a CREATEROLE role; the expiry put
    back in the same run must stay put back."""
    w = lp_world
    expires = utc(hours=1)
    w.add_grant(expires=expires)
    assert not w.run().failed
    with w.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} VALID UNTIL 'infinity'").format(
            sql.Identifier(w.login())))
        c.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(w.owner),
                                                  sql.Identifier(w.login())))
    run = w.run()
    assert run.failed  # the revoke is refused and reported
    assert "ADMIN" in (run.targets[0].results[0].error or "")
    role = w.role(w.login())
    assert role is not None and role["rolvaliduntil"] == expires and not role["infinite"]


def _create_table(w: World, login: str, password: str, database: str, table: str) -> None:
    with w.server.conn(database) as c:  # privileges go to the group role, as they should
        c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(w.group)))
    with psycopg.connect(w.server.login_dsn(login, password, database), autocommit=True) as c:
        c.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(table)))


def _table_owner(w: World, database: str, table: str) -> tuple[object, ...] | None:
    with w.server.conn(database) as c:
        return c.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s",
                         [table]).fetchone()


def test_a_login_owning_tables_in_two_databases_is_revoked(lp_any_world: World) -> None:
    """Regression (PostgreSQL 15): REASSIGN OWNED was refused on every run, since the
    reconciler made itself a member of the login only on 16 and later."""
    w = lp_any_world
    password = new_password()
    w.add_grant(verifier=scram_sha256_verifier(password))
    assert not w.run().failed
    login = w.login()
    main, second = w.server.params.get("dbname", "postgres"), w.create_database()
    table = f"{w.prefix}notes"
    for database in (main, second):
        _create_table(w, login, password, database, table)
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("done")
    run = w.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results)
    assert w.role(login) is None
    for database in (main, second):
        assert _table_owner(w, database, table) == (w.owner,)
    assert w.run().targets[0].plan.actions == ()  # type: ignore[union-attr]


def _held_session_seen(w: World) -> dict[str, object]:
    """A session of the login held open across an apply: what the record says of it."""
    password = new_password()
    w.add_grant(verifier=scram_sha256_verifier(password))
    assert not w.run().failed
    with psycopg.connect(w.server.login_dsn(w.login(), password), autocommit=True) as session:
        run = w.run()
        assert not run.failed, run.targets[0].error
        actual = run.targets[0].actual
        assert actual is not None
        [seen] = [s for s in actual.open_sessions if s.login == w.login()]
        assert seen.id == str(session.info.backend_pid)
        return {"started": seen.started, "client": seen.client}


def test_the_documented_set_up_sees_a_sessions_start_and_client(lp_any_world: World) -> None:
    """pg_read_all_stats (docs/least-privilege.md) is what shows a non-superuser reconciler
    when a login was used."""
    seen = _held_session_seen(lp_any_world)
    assert seen["started"] is not None and seen["client"] == "127.0.0.1"


def test_without_pg_read_all_stats_a_session_is_seen_without_its_start(
        lp_any_world: World) -> None:
    w = lp_any_world
    with w.server.conn() as c:
        c.execute(sql.SQL("REVOKE pg_read_all_stats FROM {}").format(
            sql.Identifier(w.prefix + "reconciler")))
    seen = _held_session_seen(w)
    assert seen == {"started": None, "client": None}


def test_a_new_verifier_in_the_grant_reaches_the_server(scram_pg: PgServer,
                                                         tmp_path: Path) -> None:
    """A non-superuser reconciler cannot read verifiers to compare them; a grant file that
    brings a new one (a new password, reviewed like any change) still sets it."""
    with least_privilege_world(scram_pg, tmp_path / "repo") as w:
        first, second = new_password(), new_password()
        w.add_grant(verifier=scram_sha256_verifier(first))
        assert not w.run().failed
        psycopg.connect(w.server.login_dsn(w.login(), first)).close()
        w.add_grant(verifier=scram_sha256_verifier(second), expires=utc(hours=3))
        run = w.run()
        assert not run.failed, run.targets[0].error
        psycopg.connect(w.server.login_dsn(w.login(), second)).close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(w.server.login_dsn(w.login(), first)).close()
        assert w.run().targets[0].plan.actions == ()  # type: ignore[union-attr]
