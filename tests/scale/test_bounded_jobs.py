"""`--jobs N`: at most N of the reconciler's connections at once, whatever the number of targets.

On a throwaway PostgreSQL 15 cluster started with max_connections = 100, so that the test does
not depend on the machine's setting: 200 targets on it are applied, planned, surveyed and
listed without one refused connection; and 200 targets spread over three PostgreSQL
clusters and MariaDB are applied in one run. The bound itself is counted where the engines open and
close their connections (the drivers' connect and close, wrapped, as the scale tests count
round trips): never more than N open at once. (A role's CONNECTION LIMIT N is no exact
witness: the server still counts a closed connection until its backend has exited, so the
next connection may be refused though jitgrant held only N.) Nothing is timed."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from reconciler.credentials import mysql_native_verifier, new_password
from reconciler.embedded import EmbeddedPostgres
from reconciler.engines.mysql import account, identifier, literal
from tests.cli.conftest import jitgrant
from tests.conftest import PG15_BIN, MysqlServer, PgServer
from tests.helpers import AccessRepo, grant, policy
from bench.repo import commit_files
from tests.scale.conftest import Roles, Shape, build, grant_yaml, new_shape, policy_yaml

ALL = 200


class LiveConnections:
    """The drivers' connections open at once, and the most there ever were: counted when
    psycopg.connect or pymysql.connect returns (what the engines call) and until close()
    has returned, so the count is never less than the truth."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.live = self.peak = self.opened = 0
        self._open: set[int] = set()
        self._lock = threading.Lock()
        for module, cls in ((psycopg, psycopg.Connection),
                            (pymysql, pymysql.connections.Connection)):
            monkeypatch.setattr(module, "connect", self._counting(module.connect))
            monkeypatch.setattr(cls, "close", self._closing(cls.close))

    def _counting(self, connect: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            conn = connect(*args, **kwargs)
            with self._lock:
                self._open.add(id(conn))
                self.live += 1
                self.opened += 1
                self.peak = max(self.peak, self.live)
            return conn
        return counted

    def _closing(self, close: Any) -> Any:
        def closed(conn: Any) -> Any:
            try:
                return close(conn)
            finally:
                with self._lock:
                    if id(conn) in self._open:
                        self._open.discard(id(conn))
                        self.live -= 1
        return closed


@pytest.fixture(scope="module")
def pg100() -> Iterator[PgServer]:
    """PostgreSQL 15 with max_connections = 100 (3 of them kept for superusers)."""
    if not PG15_BIN.is_dir():
        pytest.skip("no PostgreSQL 15 binaries for a throwaway cluster")
    with EmbeddedPostgres(secrets.token_urlsafe(16), PG15_BIN,
                          settings={"max_connections": "100"}) as server:
        yield PgServer("pg15-max100", server.uri(), scram=True)


@pytest.fixture
def roles100(pg100: PgServer) -> Iterator[Roles]:
    made = Roles(pg100)
    try:
        yield made
    finally:
        made.drop_all()


def everywhere(shape: Shape) -> Any:
    return lambda person: [(t, "readonly") for t in range(shape.targets)]


def run(*args: str, env: dict[str, str]) -> Any:
    return jitgrant(*args, env=env)


def test_two_hundred_targets_on_a_server_with_max_connections_100(
        tmp_path: Path, pg100: PgServer, roles100: Roles,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pg100.conn() as c:
        assert c.execute("SHOW max_connections").fetchone() == ("100",)
    shape = new_shape(ALL, 1)
    roles100.add(shape)
    root = tmp_path / "repo"
    wanted = build(root, shape, everywhere(shape), datetime.now(timezone.utc)
                   + timedelta(hours=4))
    env = roles100.env(shape)
    count = LiveConnections(monkeypatch)

    applied = run("apply", "--repo", str(root), "--no-commit", "--format", "json", env=env)
    assert applied.exit_code == 0, applied.stderr[-2000:]
    assert len(json.loads(applied.stdout)["targets"]) == ALL
    assert set(roles100.logins(shape)) == wanted | {shape.group}

    planned = run("plan", "--repo", str(root), env=env)
    assert planned.exit_code == 0, planned.stderr[-2000:]  # in sync, every target read

    standing = run("standing", "--repo", str(root), "--format", "json", env=env)
    report = json.loads(standing.stdout)
    assert report["errors"] == {} and len(report["targets_read"]) == ALL

    status = run("status", "--repo", str(root), "--format", "json", env=env)
    assert status.exit_code == 0, status.stderr
    rows = json.loads(status.stdout)["grants"]
    assert len(rows) == ALL and all(r["login_exists"] for r in rows)
    assert count.opened >= 4 * ALL and count.peak <= 8, (count.opened, count.peak)


def test_jobs_2_never_holds_a_third_connection(tmp_path: Path, pg100: PgServer,
                                               roles100: Roles,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shape = new_shape(12, 1)
    roles100.add(shape)
    env = roles100.env(shape)
    root = tmp_path / "repo"
    wanted = build(root, shape, everywhere(shape), datetime.now(timezone.utc)
                   + timedelta(hours=4))
    count = LiveConnections(monkeypatch)

    applied = run("apply", "--repo", str(root), "--no-commit", "--jobs", "2", env=env)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    assert set(roles100.logins(shape)) == wanted | {shape.group}
    assert run("plan", "--repo", str(root), "-j", "2", env=env).exit_code == 0
    standing = run("standing", "--repo", str(root), "--jobs", "2", "--format", "json", env=env)
    assert json.loads(standing.stdout)["errors"] == {}
    status = run("status", "--repo", str(root), "--jobs", "2", "--format", "json", env=env)
    assert all(r["login_exists"] for r in json.loads(status.stdout)["grants"])
    assert count.opened >= 4 * shape.targets and count.peak == 2, (count.opened, count.peak)
    assert count.live == 0


# -- MariaDB ---------------------------------------------------------------------------------

@pytest.mark.mysql
def test_several_mariadb_targets_with_jobs_1(tmp_path: Path, mysql: MysqlServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tag = secrets.token_hex(3)
    stem, group = f"j{tag}_", f"g{tag}_app"
    mysql.sql(f"CREATE ROLE {identifier(group)}")
    try:
        repo, env, logins = _mariadb_repo(tmp_path / "repo", stem, group, mysql.admin_dsn)
        count = LiveConnections(monkeypatch)
        applied = run("apply", "--repo", str(repo.root), "--no-commit", "--jobs", "1", env=env)
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        found = {row[0] for row in mysql.sql(
            f"SELECT User FROM mysql.global_priv WHERE User LIKE {literal(stem + '%')}")}
        assert found == logins
        assert run("plan", "--repo", str(repo.root), "--jobs", "1", env=env).exit_code == 0
        standing = run("standing", "--repo", str(repo.root), "-j", "1", "--format", "json",
                       env=env)
        assert json.loads(standing.stdout)["errors"] == {}
        assert count.opened >= 12 and count.peak == 1, (count.opened, count.peak)
    finally:
        users = mysql.sql("SELECT User, Host FROM mysql.global_priv WHERE "
                          f"LEFT(User, {len(stem)}) = {literal(stem)}")
        mysql.sql("SELECT 1", *(f"DROP USER IF EXISTS {account(u, h)}" for u, h in users),
                  f"DROP ROLE IF EXISTS {identifier(group)}")


def _mariadb_repo(root: Path, stem: str, group: str, dsn: str
                  ) -> tuple[AccessRepo, dict[str, str], set[str]]:
    """Four targets on the one server, each its own prefix and DSN variable; a grant each."""
    doc = policy(engine="mysql", groups=(group,))
    first = doc["targets"].pop("db1")
    repo, env, logins = AccessRepo(root), {}, set()
    verifier = mysql_native_verifier(new_password())
    for k in range(4):
        name, var = f"my{k}", f"JG_JOBS_{stem.upper()}{k}"
        doc["targets"][name] = {**first, "dsn_env": var, "role_prefix": f"{stem}{k}_"}
        repo.write(f"grants/{name}/alice.yaml", grant(target=name, verifier=verifier))
        env[var] = dsn
        logins.add(f"{stem}{k}_alice_readonly")
    repo.write("policies/main.yaml", doc)
    repo.commit("four targets on one MariaDB")
    return repo, env, logins


# -- A fleet: several PostgreSQL clusters and MariaDB in one run ---------------------------------

PER_SERVER = ALL // 4  # three PostgreSQL clusters and one MariaDB, 50 targets each


@pytest.mark.mysql
def test_two_hundred_targets_on_three_postgresql_clusters_and_mariadb_in_one_run(
        tmp_path: Path, pg100: PgServer, pg15: PgServer, pg18: PgServer, mysql: MysqlServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One apply over 200 targets: 50 on the max_connections = 100 cluster, 50 on the
    machine's PostgreSQL 15, 50 on the embedded PostgreSQL 18 and 50 on MariaDB, a grant
    each. Every login is made, the second apply and plan find all in sync, and the default
    --jobs (8) holds at most 8 of the drivers' connections at once, over all servers."""
    shape = new_shape(ALL, 1)
    pgs = [Roles(server) for server in (pg100, pg15, pg18)]
    on = {t: t // PER_SERVER for t in range(ALL)}  # 0-2: a PostgreSQL cluster, 3: MariaDB
    try:
        for made in pgs:
            made.add(shape)
        mysql.sql(f"CREATE ROLE {identifier(shape.group)}")
        dsns = [*(made.server.admin_dsn for made in pgs), mysql.admin_dsn]
        env = {shape.dsn_env(t): dsns[on[t]] for t in range(ALL)}
        root = tmp_path / "repo"
        wanted = _fleet_repo(root, shape, on)
        count = LiveConnections(monkeypatch)

        applied = run("apply", "--repo", str(root), "--no-commit", "--format", "json", env=env)
        assert applied.exit_code == 0, applied.stderr[-2000:]
        targets = json.loads(applied.stdout)["targets"]
        assert len(targets) == ALL and all(t["error"] is None for t in targets)
        assert {t["engine"] for t in targets} == {"postgres", "mysql"}
        for server, made in enumerate(pgs):
            assert set(made.logins(shape)) == wanted[server] | {shape.group}, made.server.label
        assert _mariadb_logins(mysql, shape) == wanted[3]

        again = run("apply", "--repo", str(root), "--no-commit", "--format", "json", env=env)
        assert again.exit_code == 0, again.stderr[-2000:]
        targets = json.loads(again.stdout)["targets"]
        assert len(targets) == ALL and all(t["error"] is None and t["actions"] == []
                                           for t in targets)
        planned = run("plan", "--repo", str(root), env=env)
        assert planned.exit_code == 0, planned.stderr[-2000:]  # in sync, every target read
        assert count.opened >= 3 * ALL and count.peak <= 8, (count.opened, count.peak)
        assert count.live == 0
    finally:
        for made in pgs:
            made.drop_all()
        _drop_mariadb(mysql, shape)


def _fleet_repo(root: Path, shape: Shape, on: dict[int, int]) -> list[set[str]]:
    """The shape's repository with the targets `on` server 3 made MariaDB ones (a verifier
    in their grants); the logins granted, by server."""
    text = policy_yaml(shape)
    for t, server in on.items():
        if server == 3:
            head = f"  {shape.target(t)}:\n    engine: postgres\n"
            text = text.replace(head, f"  {shape.target(t)}:\n    engine: mysql\n")
    verifier = json.dumps(mysql_native_verifier(new_password()))  # quoted: it starts with *
    expires = datetime.now(timezone.utc) + timedelta(hours=4)
    files, wanted = [("policies/main.yaml", text)], [set[str]() for _ in range(4)]
    for t, server in on.items():
        body = grant_yaml(shape, t, 0, "readonly", expires)
        if server == 3:
            body += f"password_verifier: {verifier}\n"
        files.append((f"grants/{shape.target(t)}/{shape.person(0)}-readonly.yaml", body))
        wanted[server].add(shape.login(t, 0, "readonly"))
    commit_files(root, files, f"{len(on)} targets on four servers")
    return wanted


def _mariadb_logins(mysql: MysqlServer, shape: Shape) -> set[str]:
    stem = f"s{shape.tag}"
    return {row[0] for row in mysql.sql(
        "SELECT User FROM mysql.global_priv WHERE "
        f"LEFT(User, {len(stem)}) = {literal(stem)} AND User <> {literal(shape.group)}")}


def _drop_mariadb(mysql: MysqlServer, shape: Shape) -> None:
    stem = f"s{shape.tag}"
    users = mysql.sql("SELECT User, Host FROM mysql.global_priv WHERE "
                      f"LEFT(User, {len(stem)}) = {literal(stem)} "
                      f"AND User <> {literal(shape.group)}")
    mysql.sql("SELECT 1", *(f"DROP USER IF EXISTS {account(u, h)}" for u, h in users),
              f"DROP ROLE IF EXISTS {identifier(shape.group)}")


def test_the_many_targets_benchmark_runs(pg100: PgServer, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    """bench/many_targets.py, tiny: it builds, applies, finds the no-op runs in sync, and
    drops what it made (its figures are not checked: nothing here is timed)."""
    from bench import many_targets

    assert many_targets.main(["--dsn", pg100.admin_dsn, "--targets", "3", "--per-target", "2",
                              "--repeat", "1", "--jobs", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "3 targets x 2 grants: no-op apply --jobs 2:" in out
    assert "1 target x 6 grants: no-op plan:" in out
    with psycopg.connect(pg100.admin_dsn) as c:
        row = c.execute("SELECT count(*) FROM pg_roles WHERE rolname ~ '^b[0-9a-f]{4}'")
        assert row.fetchone() == (0,)
