"""The reconciler as a non-superuser on PostgreSQL 16+, set up with the README's statements."""

from __future__ import annotations

from collections.abc import Iterator
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
]


@pytest.fixture
def lp_world(pg18: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(pg18, tmp_path / "repo")
    # Named inside the namespace on purpose: the reconciler must never touch its own role.
    admin = f"{w.prefix}reconciler"
    password = new_password()
    w.admin_dsn = pg18.login_dsn(admin, password)
    names = {"admin": sql.Identifier(admin), "group": sql.Identifier(w.group),
             "owner": sql.Identifier(w.owner), "password": sql.Literal(password)}
    with pg18.conn() as c:
        for statement in SETUP:
            c.execute(sql.SQL(statement).format(**names))
    w.write_policy(reassign_owned_to=w.owner)
    yield w
    w.cleanup()
    with pg18.conn() as c:
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(names["admin"]))


def test_life_cycle_without_superuser(lp_world: World) -> None:
    w = lp_world
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
