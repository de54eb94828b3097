"""Verifiers and the server's log: a failing statement's query string is logged whole
(log_min_error_statement = error by default), so no verifier shares a query string with
another login's statements, and the reconciler turns that logging off where it may."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.embedded import EmbeddedPostgres
from reconciler.engines.postgres import PostgresEngine
from reconciler.model import Target
from tests.conftest import PgServer
from tests.helpers import grant
from tests.integration.test_least_privilege import least_privilege_world


@pytest.fixture
def logged() -> Iterator[tuple[PgServer, Path]]:
    """A throwaway PostgreSQL 18 whose log the test reads."""
    with EmbeddedPostgres(secrets.token_urlsafe(16)) as server:
        yield PgServer("pg18-logged", server.uri(), scram=True), server.root / "log"


def test_a_failing_batch_logs_no_other_logins_verifier(logged: tuple[PgServer, Path],
                                                       tmp_path: Path) -> None:
    """A least-privilege reconciler without SET on the logging parameters: alice's DROP ROLE
    fails (a superuser granted her a privilege directly) in the batch that creates bob's login
    and alice's other one. The failing statement is logged; the new logins' verifiers are not."""
    server, log = logged
    with least_privilege_world(server, tmp_path / "repo") as w:
        w.add_grant(verifier=scram_sha256_verifier(new_password()))
        assert not w.run().failed
        with w.server.conn() as c:
            c.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
                sql.Identifier(w.login())))
        verifiers = [scram_sha256_verifier(new_password()) for _ in range(2)]
        w.repo.remove("grants/db1/alice.yaml")
        w.repo.write("grants/db1/bob.yaml", grant("bob", verifier=verifiers[0]))
        w.repo.write("grants/db1/alice-rw.yaml", grant(access="readwrite", verifier=verifiers[1]))
        w.repo.commit("alice's readonly done; bob, and alice's readwrite")
        run = w.run()
        assert [r.status for r in run.targets[0].results].count("failed") == 1
        assert w.role(w.login("bob")) is not None
        assert w.role(w.login(access="readwrite")) is not None
        text = log.read_text(errors="replace")
        assert "DROP ROLE " + sql.Identifier(w.login()).as_string(None) in text
        for verifier in verifiers:
            assert verifier not in text
            assert verifier.split("$")[2] not in text  # nor any part of it


def _settings(dsn: str) -> tuple[str, str]:
    target = Target("db1", "postgres", "JG_UNUSED", role_prefix="t_unused_")
    session = PostgresEngine().connect(target, dsn)
    try:
        row = session.conn.execute("SELECT current_setting('log_statement'),"
                                   " current_setting('log_min_error_statement')").fetchone()
    finally:
        session.close()
    assert row is not None
    return str(row[0]), str(row[1])


def test_a_superuser_reconciler_keeps_its_statements_out_of_the_log(pg: PgServer) -> None:
    assert _settings(pg.admin_dsn) == ("none", "panic")


def test_set_on_the_parameters_is_used_when_granted(pg18: PgServer, tmp_path: Path) -> None:
    """Without the grant the server's own settings stay, and connecting still works."""
    with least_privilege_world(pg18, tmp_path / "repo") as w:
        admin = sql.Identifier(w.prefix + "reconciler")
        before = _settings(w.admin_dsn)
        assert before[1] != "panic"
        with pg18.conn() as c:
            c.execute(sql.SQL("GRANT SET ON PARAMETER log_statement, log_min_error_statement,"
                              " log_min_duration_statement TO {}").format(admin))
        try:
            assert _settings(w.admin_dsn) == ("none", "panic")
        finally:
            with pg18.conn() as c:
                c.execute(sql.SQL("REVOKE SET ON PARAMETER log_statement,"
                                  " log_min_error_statement, log_min_duration_statement"
                                  " FROM {}").format(admin))
