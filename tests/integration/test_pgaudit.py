"""pgaudit for real: a throwaway PostgreSQL 15 cluster with pgaudit preloaded, an access level
with `settings: {pgaudit.log: ...}`, and the server log showing the temporary login's
statements while another role's are not there.

pgaudit comes from the distribution's package postgresql-15-pgaudit: where it is not installed,
the package is downloaded (apt-get download) and unpacked into a temporary folder (dpkg -x),
so the machine is not changed; the test skips, saying why, only where neither works.
.ci/run installs the package, so CI never skips."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.embedded import EmbeddedPostgres
from tests.conftest import PG15_BIN, PgServer
from tests.integration.conftest import World
from tests.integration.test_role_settings import actions, config, line_of, with_settings

INSTALLED = Path("/usr/lib/postgresql/15/lib/pgaudit.so")
PACKAGE = "postgresql-15-pgaudit"


def select(text: str) -> sql.Composed:
    """`SELECT '<text>'` with the text in the statement itself (the server log shows it),
    quoted by the driver."""
    return sql.SQL("SELECT {}").format(sql.Literal(text))


def _library(into: Path) -> str:
    """shared_preload_libraries' entry for pgaudit: the installed one, else the package
    unpacked into `into` (an absolute path works for a preloaded library)."""
    if INSTALLED.exists():
        return "pgaudit"
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        pytest.skip(f"{PACKAGE} is not installed and there is no apt-get/dpkg to fetch it")
    got = subprocess.run(["apt-get", "download", PACKAGE], cwd=into, capture_output=True,
                         text=True)
    debs = list(into.glob("*.deb"))
    if got.returncode != 0 or not debs:
        pytest.skip(f"{PACKAGE} is not installed and apt-get download failed: "
                    f"{got.stderr.strip()[-200:]}")
    subprocess.run(["dpkg", "-x", str(debs[0]), str(into / "root")], check=True)
    found = next((into / "root").rglob("pgaudit.so"), None)
    if found is None:
        pytest.skip(f"{PACKAGE} has no pgaudit.so")
    return str(found)


@pytest.fixture(scope="session")
def pgaudit_pg() -> Iterator[tuple[PgServer, Path]]:
    if not PG15_BIN.is_dir():
        pytest.skip("no PostgreSQL 15 binaries for a throwaway cluster")
    unpacked = Path(tempfile.mkdtemp(prefix="jitgrant-pgaudit-"))
    unpacked.chmod(0o755)  # the server may run as another user (not as root)
    try:
        library = _library(unpacked)
        with EmbeddedPostgres(secrets.token_urlsafe(16), PG15_BIN,
                              settings={"shared_preload_libraries": library}) as server:
            yield PgServer("pg15-pgaudit", server.uri(), scram=True), server.root / "log"
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


@pytest.fixture
def audited(pgaudit_pg: tuple[PgServer, Path], tmp_path: Path) -> Iterator[tuple[World, Path]]:
    server, log = pgaudit_pg
    w = World(server, tmp_path / "repo")
    yield w, log
    w.cleanup()


def test_pgaudit_logs_the_temporary_logins_statements_and_not_anothers(
        audited: tuple[World, Path]) -> None:
    world, log = audited
    password = new_password()
    with_settings(world, {"pgaudit.log": "read, write", "statement_timeout": "5s"})
    world.add_grant(verifier=scram_sha256_verifier(password))
    run = world.run()
    assert not run.failed, run.problems
    assert config(world, world.login())["pgaudit.log"] == "read, write"
    other = f"{world.prefix.rstrip('_')}x_other"  # outside the namespace: not managed
    mark = secrets.token_hex(4)
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(other), sql.Literal(password)))
    try:
        with psycopg.connect(world.server.login_dsn(world.login(), password),
                             autocommit=True) as conn:
            conn.execute(select(f"audited-{mark}"))
            # The login cannot switch its audit off: pgaudit.log is a superuser setting.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SET pgaudit.log = 'none'")
            conn.execute(select(f"still-audited-{mark}"))
        with psycopg.connect(world.server.login_dsn(other, password), autocommit=True) as conn:
            conn.execute(select(f"not-audited-{mark}"))
        text = log.read_text(errors="replace")
    finally:
        with world.server.conn() as c:
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))
    audit_lines = [line for line in text.splitlines() if "AUDIT:" in line]
    assert any(f"audited-{mark}" in line and "SESSION" in line for line in audit_lines), text
    assert any(f"still-audited-{mark}" in line for line in audit_lines)
    assert f"not-audited-{mark}" not in text
    assert actions(world.run()) == []


def test_pgaudit_log_is_refused_where_pgaudit_is_not_loaded(pg15: PgServer,
                                                            tmp_path: Path) -> None:
    """The machine's PostgreSQL does not preload pgaudit: the setting would do nothing there,
    so the level's grants are refused at plan time, at the setting's line."""
    with pg15.conn() as c:
        row = c.execute("SELECT count(*) FROM pg_settings WHERE name = 'pgaudit.log'").fetchone()
    if row != (0,):
        pytest.skip("pgaudit is loaded on the machine's PostgreSQL")
    world = World(pg15, tmp_path / "repo")
    try:
        with_settings(world, {"pgaudit.log": "all"})
        world.add_grant()
        run = world.run()
        assert run.failed
        line = line_of(world, "pgaudit.log:")
        assert any(str(p).startswith(f"policies/main.yaml:{line}: access.readonly.settings."
                                     "pgaudit.log: ") and "library is not loaded" in p.message
                   for p in run.problems), run.problems
        assert world.role(world.login()) is None
    finally:
        world.cleanup()
