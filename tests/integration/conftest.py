"""A World per test: a PostgreSQL server, a unique namespace on it, and an access repository."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from reconciler.apply import Run, reconcile
from reconciler.snapshot import read_snapshot
from tests.conftest import MysqlServer, PgServer
from tests.helpers import AccessRepo, grant, policy

if TYPE_CHECKING:  # test_mysql imports this file: MyWorld is imported where `my` runs
    from tests.integration.test_mysql import MyWorld


class World:
    """One target on `server` with a namespace of its own, so tests never meet."""

    def __init__(self, server: PgServer, root: Path, admin_dsn: str | None = None) -> None:
        tag = secrets.token_hex(3)
        self.server = server
        self.prefix = f"t{tag}_"
        self.group = f"g{tag}_app"
        self.owner = f"g{tag}_owner"
        self.member = f"g{tag}_member"  # created by tests that need a third role
        self.dsn_env = f"JG_DSN_{tag.upper()}"
        self.admin_dsn = admin_dsn or server.admin_dsn
        self.databases: list[str] = []
        self.repo = AccessRepo(root)
        self.extra_target: dict[str, Any] = {}
        with server.conn() as c:
            for name in (self.group, self.owner):
                c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
        self.write_policy()

    @property
    def env(self) -> dict[str, str]:
        return {self.dsn_env: self.admin_dsn}

    def write_policy(self, **target_extra: Any) -> None:
        self.extra_target.update(target_extra)
        self.repo.write("policies/main.yaml", policy(dsn_env=self.dsn_env, prefix=self.prefix,
                                                     groups=(self.group,), **self.extra_target))
        self.repo.commit("policy")

    def login(self, grantee: str = "alice", access: str = "readonly") -> str:
        return f"{self.prefix}{grantee}_{access}"

    def add_grant(self, name: str = "alice", **kwargs: Any) -> str:
        rel = f"grants/db1/{name}.yaml"
        self.repo.write(rel, grant(**kwargs))
        self.repo.commit(f"grant {name}")
        return rel

    def run(self, execute: bool = True, now: datetime | None = None,
            env: dict[str, str] | None = None) -> Run:
        now = now or datetime.now(timezone.utc)
        snapshot = read_snapshot(self.repo.root, "HEAD", now)
        return reconcile(snapshot, now, execute=execute, env=env or self.env)

    def role(self, name: str) -> dict[str, Any] | None:
        with self.server.conn() as c:
            cur = c.execute(
                "SELECT rolname, rolcanlogin, rolsuper, rolconnlimit,"
                " CASE WHEN isfinite(rolvaliduntil) THEN rolvaliduntil END AS rolvaliduntil,"
                " rolvaliduntil = 'infinity' AS infinite,"
                " array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g"
                "       ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of"
                " FROM pg_roles r WHERE rolname = %s", [name])
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d.name for d in cur.description or ()], row, strict=True))

    def database_owner(self, database: str) -> str:
        with self.server.conn() as c:
            row = c.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                            [database]).fetchone()
            assert row is not None
            return str(row[0])

    def create_database(self) -> str:
        name = f"{self.prefix}db{len(self.databases)}"
        with self.server.conn() as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return name

    def cleanup(self) -> None:
        with self.server.conn() as c:
            roles = [r[0] for r in c.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)"
                " OR rolname = ANY(%s)", [self.prefix, [self.group, self.owner, self.member]])]
            for name in roles:
                c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE usename = %s", [name])
            for db in self.databases:
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(db)))
            for db in self._databases(c):
                with self.server.conn(db) as other:
                    for name in roles:
                        other.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            for name in sorted(roles, key=lambda n: n in (self.group, self.owner, self.member)):
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    @staticmethod
    def _databases(c: psycopg.Connection[Any]) -> list[str]:
        return [r[0] for r in c.execute(
            "SELECT datname FROM pg_database WHERE datallowconn")]


@pytest.fixture
def world(pg: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(pg, tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.fixture
def my(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    """One MySQL/MariaDB target with a namespace of its own (test_mysql.MyWorld)."""
    from tests.integration.test_mysql import MyWorld

    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.fixture
def scram_world(scram_pg: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(scram_pg, tmp_path / "repo")
    yield w
    w.cleanup()
