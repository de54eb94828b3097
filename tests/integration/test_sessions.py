"""When access was used (issue #15), against real servers: a temporary login holds a real
session across applies, the audit records it with its start, the revocation records the
session it ended, and `jitgrant audit` tells first used, last seen, sessions, unused access and
after-hours use by session time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from reconciler.apply import reconcile
from reconciler.audit import persist
from reconciler.auditlog import after_hours, parse_zone
from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.snapshot import read_snapshot
from tests.cli.conftest import jitgrant
from tests.conftest import MysqlServer
from tests.helpers import utc
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld


def record(root: Path, rel: str | None) -> dict[str, Any]:
    assert rel is not None
    return json.loads((root / rel).read_bytes())  # type: ignore[no-any-return]


def audit_rows(root: Path, *args: str) -> list[dict[str, Any]]:
    result = jitgrant("audit", "--repo", str(root), "--format", "json", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # every record matched the schema
    return json.loads(result.stdout)  # type: ignore[no-any-return]


_LAST = [datetime.now(timezone.utc)]


def apply(world: Any, now: datetime | None = None) -> str | None:
    """One apply as the command runs it: reconcile, then the audit record (if any). Each run
    starts in a second of its own, as runs minutes apart do: records of one second sort by
    run id, and the comparison with the newest record then writes one more to be safe."""
    if now is None:
        now = _LAST[0] = max(datetime.now(timezone.utc), _LAST[0] + timedelta(seconds=1))
    snapshot = read_snapshot(world.repo.root, "HEAD", now)
    run = reconcile(snapshot, now, execute=True, env=world.env)
    assert not run.failed, (run.targets[0].error, run.targets[0].results)
    return persist(world.repo.root, run)


def pg_session(world: World, password: str, application: str = "psql") -> Any:
    return psycopg.connect(world.server.login_dsn(world.login(), password),
                           application_name=application, autocommit=True)


def test_a_session_held_across_applies_is_recorded_with_its_start(world: World) -> None:
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    world.add_grant("bob", grantee="bob", verifier=scram_sha256_verifier(new_password()))
    first = record(world.repo.root, apply(world))  # creates both logins; nothing open yet
    assert first["sessions"] == [] and first["targets"][0]["sampled"] is True
    with pg_session(world, password, "orders-report") as session:
        pid = session.info.backend_pid
        row = session.execute("SELECT backend_start FROM pg_stat_activity "
                              "WHERE pid = pg_backend_pid()").fetchone()
        assert row is not None
        started = row[0].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        held = record(world.repo.root, apply(world))  # nothing to change, a session open
        assert held["actions"] == []
        [entry] = held["sessions"]
        assert entry["login"] == world.login() and entry["id"] == str(pid)
        assert (entry["grantee"], entry["access"]) == ("alice", "readonly")
        assert entry["started"] == started
        assert entry["application"] == "orders-report"
        assert entry["client"] == "127.0.0.1" and entry["database"] == "postgres"
        assert apply(world) is None  # the same session again: nothing new, no record
        # The grant ends while the session is open: the revocation ends it and says which.
        last = record(world.repo.root, apply(world, now=utc(hours=3)))
    ends = {a["login"]: a for a in last["actions"]}
    alice = ends[world.login()]
    assert alice["action"] == "revoke" and alice["sessions_ended"] == 1
    assert alice["ended_sessions"] == [{"id": str(pid), "started": started,
                                        "client": "127.0.0.1", "application": "orders-report",
                                        "database": "postgres"}]
    assert ends[world.login("bob")]["ended_sessions"] == []

    periods = {p["login"]: p for p in audit_rows(world.repo.root)}
    used = periods[world.login()]
    assert used["used"] is True and used["first_used"] == started
    assert used["last_seen"] == last["started"]  # still open when the revocation ended it
    assert used["sessions_seen"] == 1 and used["sessions_ended"] == 1
    assert used["clients"] == ["127.0.0.1"] and used["judged_by"] == "sessions"
    never = periods[world.login("bob")]
    assert never["used"] is False and never["first_used"] is None
    assert never["sessions_seen"] == 0 and never["judged_by"] == "grant"
    unused = audit_rows(world.repo.root, "--unused")
    assert [p["login"] for p in unused] == [world.login("bob")]

    # --after-hours judges alice's period by her session's start, in the zone asked for
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        rows = audit_rows(world.repo.root, "--after-hours", "--timezone", zone)
        start = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert (world.login() in [p["login"] for p in rows]) == after_hours(
            start, parse_zone(zone))
        assert all(p["judged_by"] == ("sessions" if p["login"] == world.login() else "grant")
                   for p in rows)


def test_status_shows_a_login_in_use(world: World) -> None:
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    apply(world)
    env = world.env
    with pg_session(world, password):
        result = jitgrant("status", "--repo", str(world.repo.root), "--format", "json", env=env)
        assert result.exit_code == 0, result.output
        [row] = json.loads(result.stdout)["grants"]
        assert row["sessions_open"] == 1 and row["login_exists"] is True
        text = jitgrant("status", "--repo", str(world.repo.root), env=env)
        assert "yes, in use (1 session)" in text.stdout
    result = jitgrant("status", "--repo", str(world.repo.root), "--format", "json", env=env)
    assert json.loads(result.stdout)["grants"][0]["sessions_open"] == 0


def test_mariadb_connection_held_across_applies_then_killed(my: MyWorld) -> None:
    my.add_grant()
    my.add_grant("bob", grantee="bob")
    assert apply(my) is not None
    with my.connect() as session:
        with session.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            row = cur.fetchone()
            assert row is not None
            conn_id = str(row[0])
        held = record(my.repo.root, apply(my))
        [entry] = held["sessions"]
        first_seen = held["started"]
        assert entry["id"] == conn_id and entry["login"] == my.login()
        assert entry["started"] is None  # MariaDB does not tell a connection's start
        assert entry["database"] == "test" and entry["client"].startswith("127.0.0.1:")
        assert apply(my) is None
        my.repo.remove("grants/db1/alice.yaml")
        my.repo.commit("alice is done")
        last = record(my.repo.root, apply(my))
    [revoke] = [a for a in last["actions"] if a["login"] == my.login()]
    assert revoke["sessions_ended"] == 1
    assert [s["id"] for s in revoke["ended_sessions"]] == [conn_id]
    assert revoke["ended_sessions"][0]["started"] is None
    periods = {p["login"]: p for p in audit_rows(my.repo.root)}
    assert periods[my.login()]["used"] is True
    assert periods[my.login()]["first_used"] == first_seen  # first seen: its start is unknown
    assert periods[my.login()]["sessions_seen"] == 1
    assert periods[my.login("bob")]["used"] is False
    assert [p["login"] for p in audit_rows(my.repo.root, "--unused")] == [my.login("bob")]


def test_sessions_outside_the_namespace_or_protected_are_never_recorded(world: World) -> None:
    """A role outside the namespace and one inside it but in never_touch each hold a session
    beside the managed login's: only the managed login's is recorded."""
    password = new_password()
    outsider, kept = f"{world.group}_outsider", f"{world.prefix}kept"
    with world.server.conn() as c:
        for name in (outsider, kept):
            c.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Literal(password)))
    world.write_policy(never_touch=[kept])
    world.add_grant(verifier=scram_sha256_verifier(password))
    try:
        apply(world)
        with pg_session(world, password), \
                psycopg.connect(world.server.login_dsn(outsider, password)), \
                psycopg.connect(world.server.login_dsn(kept, password)):
            last = record(world.repo.root, apply(world))
        assert {s["login"] for s in last["sessions"]} == {world.login()}
        assert {u["login"] for u in last["usage"]} == {world.login()}
    finally:
        with world.server.conn() as c:
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE usename = %s", [outsider])
            c.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(
                psycopg.sql.Identifier(outsider)))


# -- counters that survive disconnects ----------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb_ps() -> Any:
    """A throwaway MariaDB with performance_schema on (the machine's has it off)."""
    from tests.mysql_server import ThrowawayMariadb

    server = ThrowawayMariadb("--performance-schema=ON")
    if not server.available:
        pytest.skip("no mariadbd to start a server with performance_schema on")
    try:
        yield MysqlServer("mariadb-performance-schema", server.start())
    finally:
        server.stop()


def test_performance_schema_counts_connections_between_samples(mariadb_ps: MysqlServer,
                                                               tmp_path: Path) -> None:
    """A connection that opens and closes between two applies is never seen as a session,
    but performance_schema.accounts counts it: the period reads as used, with no session."""
    my = MyWorld(mariadb_ps, tmp_path / "repo")
    try:
        my.add_grant()
        my.add_grant("bob", grantee="bob")
        first = record(my.repo.root, apply(my))
        assert first["usage"] == []  # both at zero
        my.connect().close()
        # nothing open, but a counter moved: recorded
        [usage] = record(my.repo.root, apply(my))["usage"]
        assert usage == {"target": "db1", "login": my.login(), "calls": None,
                         "connections_total": 1, "sessions_open": 0}
        assert apply(my) is None  # nothing new
        hostile = "=HYPERLINK(\"http://x\")\n\",\"}\u2028" + "x" * 300
        args = {"host": "127.0.0.1", "port": int(mariadb_ps.admin_dsn.split(":")[-1].split("/")[0]),
                "user": my.login(), "password": my.passwords["alice"], "program_name": hostile}
        with pymysql.connect(**args):
            [entry] = record(my.repo.root, apply(my))["sessions"]
        assert entry["application"] is not None and "\n" not in entry["application"]
        assert len(entry["application"]) <= 120 and entry["application"].startswith("=HYP")
        periods = {p["login"]: p for p in audit_rows(my.repo.root)}
        assert periods[my.login()]["used"] is True
        assert periods[my.login("bob")]["used"] is False
    finally:
        my.cleanup()


def test_pg_stat_statements_counts_calls_between_samples(tmp_path: Path) -> None:
    """pg_stat_statements needs shared_preload_libraries: a throwaway PostgreSQL 15 cluster
    with it preloaded. Statements run in a session that ends between two applies are counted."""
    import secrets

    from reconciler.embedded import EmbeddedPostgres
    from tests.conftest import PG15_BIN, PgServer

    if not PG15_BIN.is_dir():
        pytest.skip("no PostgreSQL 15 binaries for a cluster with pg_stat_statements preloaded")
    with EmbeddedPostgres(secrets.token_urlsafe(16), PG15_BIN,
                          {"shared_preload_libraries": "pg_stat_statements"}) as local:
        server = PgServer("pg15-statements", local.uri(), scram=True)
        with server.conn() as c:
            c.execute("CREATE EXTENSION pg_stat_statements")
        world = World(server, tmp_path / "repo")
        password = new_password()
        world.add_grant(verifier=scram_sha256_verifier(password))
        assert record(world.repo.root, apply(world))["usage"] == []
        with pg_session(world, password) as session:
            for _ in range(3):
                session.execute("SELECT 1")
        [usage] = record(world.repo.root, apply(world))["usage"]
        assert usage["calls"] is not None and usage["calls"] >= 3
        assert usage["connections_total"] is None and usage["sessions_open"] == 0
        [period] = audit_rows(world.repo.root)
        assert period["used"] is True and period["sessions_seen"] == 0
        # pg_stat_statements gone between the session's set-up and its catalog read: the
        # read is made again without it, and the sample still taken
        from reconciler.engines.postgres import PostgresEngine

        target = read_snapshot(world.repo.root, "HEAD", utc()).policy.targets["db1"]
        session = PostgresEngine().connect(target, world.admin_dsn)
        try:
            assert session.statements is not None
            with server.conn() as c:
                c.execute("DROP EXTENSION pg_stat_statements")
            actual = session.inspect(frozenset())
            assert actual.sampled and actual.counters == () and world.login() in actual.roles
        finally:
            session.close()


def test_without_pg_stat_statements_calls_are_null(world: World) -> None:
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    apply(world)
    with pg_session(world, password):
        [usage] = record(world.repo.root, apply(world))["usage"]
    assert usage["calls"] is None and usage["sessions_open"] == 1


def test_a_record_older_than_sessions_reads_as_not_sampled(world: World) -> None:
    """A period whose records carry no sample: used is null, not false."""
    world.add_grant()
    apply(world)
    for path in (world.repo.root / "audit").rglob("*.json"):
        data = json.loads(path.read_bytes())
        for key in ("sessions", "usage"):
            data.pop(key, None)
        for t in data["targets"]:
            t.pop("sampled", None)
        path.write_text(json.dumps(data))
    [period] = audit_rows(world.repo.root)
    assert period["used"] is None
    assert audit_rows(world.repo.root, "--unused") == []
