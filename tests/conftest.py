"""Real servers for the tests: the machine's PostgreSQL, an embedded PostgreSQL 18, and
throwaway password-authenticated clusters. Nothing here is a mock."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from reconciler.embedded import EmbeddedPostgres
from reconciler.engines.mysql import parse_dsn
from tests.helpers import IDENTITY
from tests.mysql_server import ThrowawayMariadb

# tests.secretscan fails the session when a generated password leaked; tests.queue_world gives
# the queue's tests their `remote` and `gh` fixtures.
pytest_plugins = ["tests.secretscan", "tests.queue_world"]

MACHINE_PG_DSN = "postgresql://root@127.0.0.1:5432/postgres"
PG15_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session", autouse=True)
def _git_identity() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in IDENTITY}
    os.environ.update(IDENTITY)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _forget_dsns() -> Iterator[None]:
    """redact() masks the secrets of every DSN the process has read, as a command should: in
    one test session that would carry one test's short passwords into the next test's
    messages."""
    yield
    from reconciler import redact
    with redact._known_lock:
        redact._known.clear()


@dataclass
class PgServer:
    label: str
    admin_dsn: str  # a superuser
    scram: bool  # password authentication is enforced

    @property
    def params(self) -> dict[str, str]:
        return {k: str(v) for k, v in conninfo_to_dict(self.admin_dsn).items()}

    def conn(self, dbname: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        dsn = make_conninfo(self.admin_dsn, dbname=dbname) if dbname else self.admin_dsn
        return psycopg.connect(dsn, autocommit=True)

    def login_dsn(self, user: str, password: str | None, dbname: str = "postgres") -> str:
        p = self.params
        return make_conninfo(host=p.get("host", "127.0.0.1"), port=p.get("port", "5432"),
                             user=user, password=password or "", dbname=dbname,
                             connect_timeout="5")

    @property
    def version(self) -> int:
        with self.conn() as c:
            row = c.execute("SELECT current_setting('server_version_num')::int").fetchone()
            assert row is not None
            return int(row[0])


_STAND_IN: EmbeddedPostgres | None = None


def pytest_configure(config: pytest.Config) -> None:
    """A machine without a PostgreSQL on 127.0.0.1:5432 gets a stand-in for the whole session,
    as the machine's would be (trust authentication, a superuser): the tests that need "the
    machine's PostgreSQL" run on it, from the machine's PostgreSQL 15 binaries where there are
    some, else the embedded 18. Exported as JITGRANT_TEST_PG_DSN, for the commands the tests
    start too."""
    global _STAND_IN
    if os.environ.get("JITGRANT_TEST_PG_DSN") or _pg_reachable(MACHINE_PG_DSN):
        return
    _STAND_IN = EmbeddedPostgres(secrets.token_urlsafe(16),
                                 PG15_BIN if PG15_BIN.is_dir() else None, auth="trust").start()
    os.environ["JITGRANT_TEST_PG_DSN"] = _STAND_IN.uri()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STAND_IN is not None:
        os.environ.pop("JITGRANT_TEST_PG_DSN", None)
        _STAND_IN.stop()


def _pg_reachable(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def _machine_pg() -> PgServer | None:
    dsn = os.environ.get("JITGRANT_TEST_PG_DSN") or MACHINE_PG_DSN
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error:
        if os.environ.get("JITGRANT_TEST_PG_DSN"):
            raise
        return None
    return PgServer("pg15", dsn, scram=False)


@pytest.fixture(scope="session")
def pg18() -> Iterator[PgServer]:
    password = secrets.token_urlsafe(16)
    with EmbeddedPostgres(password) as server:
        yield PgServer("pg18", server.uri(), scram=True)


@pytest.fixture(scope="session")
def pg15() -> Iterator[PgServer]:
    server = _machine_pg()
    if server is not None:
        yield server
        return
    if not PG15_BIN.is_dir():
        pytest.skip("no PostgreSQL 15: neither a server on 127.0.0.1:5432 nor its binaries")
    with EmbeddedPostgres(secrets.token_urlsafe(16), PG15_BIN) as local:
        yield PgServer("pg15", local.uri(), scram=True)


@pytest.fixture(scope="session")
def pg15_scram() -> Iterator[PgServer]:
    """PostgreSQL 15 with scram-sha-256, from the machine's binaries (trust would hide expiry)."""
    if not PG15_BIN.is_dir():
        pytest.skip("no PostgreSQL 15 binaries for a password-authenticated cluster")
    with EmbeddedPostgres(secrets.token_urlsafe(16), PG15_BIN) as local:
        yield PgServer("pg15-scram", local.uri(), scram=True)


MACHINE_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"


@dataclass
class MysqlServer:
    label: str
    admin_dsn: str

    def conn(self, database: str | None = None) -> Any:
        args = parse_dsn(self.admin_dsn)
        if database is not None:
            args["database"] = database
        return pymysql.connect(**args, autocommit=True, charset="utf8mb4")

    def login(self, user: str, password: str, database: str | None = None) -> Any:
        args = parse_dsn(self.admin_dsn)
        return pymysql.connect(host=args["host"], port=args["port"], user=user,
                               password=password, database=database, connect_timeout=5,
                               autocommit=True)

    def sql(self, *statements: str) -> list[Any]:
        rows: list[Any] = []
        with self.conn() as c, c.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall())
        return rows


def _reachable(dsn: str) -> bool:
    try:
        pymysql.connect(**parse_dsn(dsn), connect_timeout=3).close()
    except pymysql.MySQLError:
        return False
    return True


@pytest.fixture(scope="session")
def mysql() -> Iterator[MysqlServer]:
    """JITGRANT_TEST_MYSQL_DSN, else the server on 127.0.0.1:3306, else a throwaway mariadbd."""
    dsn = os.environ.get("JITGRANT_TEST_MYSQL_DSN")
    if dsn:
        yield MysqlServer("mysql-env", dsn)
        return
    if _reachable(MACHINE_MYSQL_DSN):
        yield MysqlServer("mariadb-machine", MACHINE_MYSQL_DSN)
        return
    server = ThrowawayMariadb()
    if not server.available:
        if os.environ.get("JITGRANT_REQUIRE_MYSQL"):
            pytest.fail("JITGRANT_REQUIRE_MYSQL is set but there is no MySQL/MariaDB server: "
                        "set JITGRANT_TEST_MYSQL_DSN or install mariadb-server")
        pytest.skip("no MySQL/MariaDB: set JITGRANT_TEST_MYSQL_DSN or install mariadb-server")
    try:
        yield MysqlServer("mariadb-throwaway", server.start())
    finally:
        server.stop()


@pytest.fixture(params=["pg15", "pg18"])
def pg(request: pytest.FixtureRequest) -> PgServer:
    """The machine's PostgreSQL 15 (superuser path) and the embedded PostgreSQL 18."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(params=["pg15_scram", "pg18"])
def scram_pg(request: pytest.FixtureRequest) -> PgServer:
    """Servers that enforce passwords and VALID UNTIL."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """jitgrant's local password store and settings for this test only."""
    folder = tmp_path / "config"
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(folder))
    return folder
