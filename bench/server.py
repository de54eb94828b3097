"""The PostgreSQL server a benchmark runs on, and the namespace it creates and always removes."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from reconciler.credentials import new_password
from reconciler.embedded import EmbeddedPostgres

DSN_ENV = "JITGRANT_BENCH_PG_DSN"
MACHINE_DSN = "postgresql://root@127.0.0.1:5432/postgres"
BATCH = 500  # roles per DROP statement when cleaning up


@contextmanager
def server(dsn: str | None, embedded: bool) -> Iterator[str]:
    """A superuser DSN: an embedded PostgreSQL 18 for the duration, or the given server."""
    if embedded:
        with EmbeddedPostgres(new_password()) as local:
            yield local.uri()
        return
    yield dsn or os.environ.get(DSN_ENV) or MACHINE_DSN


def connect(dsn: str, dbname: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(make_conninfo(dsn, dbname=dbname) if dbname else dsn, autocommit=True)


def describe(dsn: str) -> str:
    """`PostgreSQL 15.x on host:port` for the report."""
    with connect(dsn) as c:
        row = c.execute("SELECT current_setting('server_version'),"
                        " coalesce(inet_server_addr()::text, 'socket'),"
                        " current_setting('port')").fetchone()
    assert row is not None
    version, host, port = row
    return f"PostgreSQL {version} ({host.split('/')[0]}:{port})"


SHARED_CATALOGS = ("pg_authid", "pg_auth_members", "pg_shdescription", "pg_shdepend",
                   "pg_db_role_setting")


def vacuum_catalogs(dsn: str) -> None:
    """VACUUM the shared catalogs that role changes fill with dead rows (a superuser's work;
    skipped for anyone else)."""
    with connect(dsn) as c:
        row = c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if row and row[0]:
            c.execute(sql.SQL("VACUUM {}").format(
                sql.SQL(", ").join(sql.Identifier(name) for name in SHARED_CATALOGS)))


class Namespace:
    """A random role prefix for one run plus one group role outside it; `cleanup` drops every
    role either of them names, whatever state a failed run left behind."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        with connect(dsn) as c:
            while True:
                tag = secrets.token_hex(2)
                self.prefix = f"b{tag}_"
                self.group = f"b{tag}grp"  # outside the prefix: jitgrant must not own it
                if not _roles(c, self.prefix, [self.group]):
                    break
            c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(self.group)))

    def logins(self) -> list[str]:
        with connect(self.dsn) as c:
            return _roles(c, self.prefix, [])

    def drop_logins(self) -> None:
        self._drop(include_group=False)

    def cleanup(self) -> None:
        self._drop(include_group=True)

    def _drop(self, include_group: bool) -> None:
        with connect(self.dsn) as c:
            names = _roles(c, self.prefix, [self.group] if include_group else [])
            if not names:
                return
            for database in _databases_with_dependents(c, names):
                with connect(self.dsn, database) as other:
                    _in_batches(other, "DROP OWNED BY {}", names)
            _in_batches(c, "DROP OWNED BY {}", names)
            logins = [n for n in names if n != self.group]
            _in_batches(c, "DROP ROLE IF EXISTS {}", logins)
            if self.group in names:
                _in_batches(c, "DROP ROLE IF EXISTS {}", [self.group])

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _roles(c: psycopg.Connection[Any], prefix: str, extra: list[str]) -> list[str]:
    rows = c.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)"
                     " OR rolname = ANY(%s) ORDER BY 1", [prefix, extra]).fetchall()
    return [r[0] for r in rows]


def _databases_with_dependents(c: psycopg.Connection[Any], names: list[str]) -> list[str]:
    """Other databases where these roles own objects or hold privileges."""
    rows = c.execute(
        "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid"
        " JOIN pg_roles r ON s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid"
        " WHERE r.rolname = ANY(%s) AND d.datname <> current_database()"
        " AND d.datallowconn", [names]).fetchall()
    return [r[0] for r in rows]


def _in_batches(c: psycopg.Connection[Any], template: str, names: list[str]) -> None:
    for start in range(0, len(names), BATCH):
        chunk = names[start:start + BATCH]
        c.execute(sql.SQL(template).format(sql.SQL(", ").join(map(sql.Identifier, chunk))))


def members(dsn: str, group: str, prefix: str) -> list[str]:
    """The logins under `prefix` that can log in and are members of `group`."""
    with connect(dsn) as c:
        rows = c.execute(
            "SELECT m.rolname FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member"
            " JOIN pg_roles g ON g.oid = am.roleid WHERE g.rolname = %s"
            " AND starts_with(m.rolname, %s) AND m.rolcanlogin", [group, prefix]).fetchall()
    return [r[0] for r in rows]


def comment_on(dsn: str, role: str, comment: str) -> None:
    with connect(dsn) as c:
        c.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(role),
                                                             sql.Literal(comment)))
