"""A temporary login plants objects for later: a view over data it may read, granted to PUBLIC,
a SECURITY DEFINER function, a large object, a type. Revoking it must leave none of them usable
by anyone but their new owner, on the machine's PostgreSQL 15 (superuser reconciler) and the
embedded 18 (the README's least-privilege reconciler)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.conftest import PgServer
from tests.integration.conftest import World

SECRET = "s3cret-payload"

# Run as the login. Its names are hostile on purpose: quotes, a dollar quote like the one the
# reconciler's DO block uses, a semicolon.
PLANT = [
    "CREATE VIEW {scratch}.leak AS SELECT * FROM {app}.secrets",
    "GRANT SELECT ON {scratch}.leak TO PUBLIC",
    'CREATE VIEW {scratch}."le""ak$jitgrant$; x" AS SELECT * FROM {app}.secrets',
    'GRANT SELECT (s) ON {scratch}."le""ak$jitgrant$; x" TO PUBLIC',
    "CREATE FUNCTION {scratch}.whoami() RETURNS text SECURITY DEFINER LANGUAGE sql"
    " AS 'SELECT current_user::text'",
    "CREATE TYPE {scratch}.mood AS ENUM ('plotting')",
    "CREATE SEQUENCE {scratch}.counter",
    "GRANT USAGE ON SEQUENCE {scratch}.counter TO PUBLIC",
]


def _q(statement: str, **names: str) -> sql.Composed:
    return sql.SQL(statement).format(**{k: sql.Identifier(v) for k, v in names.items()})


class Planted:
    def __init__(self, w: World, admin_dsn: str | None) -> None:
        self.w = w
        self.scratch, self.app = f"{w.prefix}scratch", f"{w.prefix}app"
        self.other = f"{w.prefix[:-1]}x_other"  # outside the namespace: another login
        self.password = new_password()
        with w.server.conn() as c:
            for schema in (self.scratch, self.app):
                c.execute(_q("CREATE SCHEMA {s}", s=schema))
            c.execute(_q("CREATE TABLE {app}.secrets (s text)", app=self.app))
            c.execute(sql.SQL("INSERT INTO {}.secrets VALUES ({})").format(
                sql.Identifier(self.app), sql.Literal(SECRET)))
            c.execute(_q("GRANT USAGE ON SCHEMA {app} TO {g}", app=self.app, g=w.group))
            c.execute(_q("GRANT SELECT ON {app}.secrets TO {g}", app=self.app, g=w.group))
            c.execute(_q("GRANT USAGE, CREATE ON SCHEMA {s} TO {g}", s=self.scratch, g=w.group))
            c.execute(_q("GRANT USAGE ON SCHEMA {s} TO PUBLIC", s=self.scratch))
            # Without superuser, REASSIGN OWNED needs the new owner to hold CREATE there.
            c.execute(_q("GRANT CREATE ON SCHEMA {s} TO {o}", s=self.scratch, o=w.owner))
            c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(self.other), sql.Literal(self.password)))
        if admin_dsn:
            w.admin_dsn = admin_dsn
        w.write_policy(reassign_owned_to=w.owner)

    def plant(self) -> int:
        """Log in as the temporary login and plant everything; the large object's oid."""
        self.w.add_grant(verifier=scram_sha256_verifier(self.password))
        run = self.w.run()
        assert not run.failed, (run.targets[0].error, run.targets[0].results)
        dsn = self.w.server.login_dsn(self.w.login(), self.password)
        with psycopg.connect(dsn, autocommit=True) as c:
            for statement in PLANT:
                c.execute(_q(statement, scratch=self.scratch, app=self.app))
            row = c.execute("SELECT lo_from_bytea(0, %s::bytea)", [SECRET.encode()]).fetchone()
            assert row is not None
            oid = int(row[0])
            c.execute(sql.SQL("GRANT SELECT ON LARGE OBJECT {} TO PUBLIC").format(
                sql.Literal(oid)))
        return oid

    def as_other(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.w.server.login_dsn(self.other, self.password),
                               autocommit=True)

    def cleanup(self) -> None:
        with self.w.server.conn() as c:
            for schema in (self.scratch, self.app):
                c.execute(_q("DROP SCHEMA IF EXISTS {s} CASCADE", s=schema))
            c.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata"
                      " WHERE lomowner = ANY(SELECT oid FROM pg_roles WHERE rolname = %s)",
                      [self.w.owner])
            c.execute(_q("DROP ROLE IF EXISTS {r}", r=self.other))


# The README's statements for a reconciler without superuser (PostgreSQL 16 and later).
LEAST_PRIVILEGE = [
    "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD {password}",
    "GRANT {group} TO {admin} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE",
    "GRANT {owner} TO {admin} WITH INHERIT TRUE",
    "GRANT pg_signal_backend TO {admin}",
]


@pytest.fixture(params=["pg15", "pg18"])
def planted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Planted]:
    server: PgServer = request.getfixturevalue(request.param)
    w = World(server, tmp_path / "repo")
    admin = None
    if request.param == "pg18":
        admin, password = f"{w.prefix}reconciler", new_password()
        names = {"admin": sql.Identifier(admin), "group": sql.Identifier(w.group),
                 "owner": sql.Identifier(w.owner), "password": sql.Literal(password)}
        with server.conn() as c:
            for statement in LEAST_PRIVILEGE:
                c.execute(sql.SQL(statement).format(**names))
    p = Planted(w, server.login_dsn(admin, password) if admin else None)
    yield p
    p.cleanup()
    w.cleanup()
    if admin:
        with server.conn() as c:
            c.execute(_q("DROP ROLE IF EXISTS {r}", r=admin))


def _refused(conn: psycopg.Connection[Any], statement: sql.Composable | str,
             params: list[Any] | None = None) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement, params)


def test_nothing_a_revoked_login_planted_can_be_used_by_another_login(planted: Planted) -> None:
    p, w = planted, planted.w
    oid = p.plant()
    with p.as_other() as other:  # the attack works while the login exists
        leak = sql.SQL("SELECT s FROM {}.leak").format(sql.Identifier(p.scratch))
        assert other.execute(leak).fetchall() == [(SECRET,)]
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("end alice's access")
    run = w.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results, run.problems)
    assert w.role(w.login()) is None
    with p.as_other() as other:
        _refused(other, leak)
        _refused(other, sql.SQL('SELECT s FROM {}."le""ak$jitgrant$; x"').format(
            sql.Identifier(p.scratch)))
        _refused(other, sql.SQL("SELECT {}.whoami()").format(sql.Identifier(p.scratch)))
        _refused(other, "SELECT lo_get(%s)", [oid])
        _refused(other, sql.SQL("SELECT nextval({})").format(
            sql.Literal(f'"{p.scratch}".counter')))
        # A cast needs no USAGE on the type; declaring a column of the type does.
        _refused(other, sql.SQL("CREATE TEMP TABLE plans (m {}.mood)").format(
            sql.Identifier(p.scratch)))
    with w.server.conn() as c:
        row = c.execute("SELECT prosecdef, pg_get_userbyid(proowner) FROM pg_proc"
                        " WHERE proname = 'whoami' AND pronamespace = %s::regnamespace",
                        [sql.Identifier(p.scratch).as_string(None)]).fetchone()
        assert row == (False, w.owner)  # a DBA granting EXECUTE later grants no one's rights
    [result] = run.targets[0].results
    [database] = result.owned_objects
    assert result.owned_objects[database] == w.owner
    listed = result.planted[database]
    scratch = p.scratch  # a plain name: the server quotes it only when it must
    revoked = "granted to PUBLIC, revoked"
    assert listed == sorted([
        f"function {scratch}.whoami() ({revoked}; SECURITY DEFINER, made SECURITY INVOKER)",
        f"large object {oid} ({revoked})",
        f"sequence {scratch}.counter ({revoked})",
        f"type {scratch}.mood ({revoked})",  # PUBLIC's default USAGE
        f'view {scratch}."le""ak$jitgrant$; x" ({revoked})',  # a column privilege
        f"view {scratch}.leak ({revoked})"])
