"""Issue 11, finding 10: `mysql://…?ssl_mode=REQUIRED&ssl_ca=…` connected in clear text
without a word. A DSN that asks for TLS now gets it or fails its target: against the machine's
servers, which offer no TLS, and against a throwaway mariadbd with certificates made here by
the openssl command line (a CA of the test's own, a server certificate for 127.0.0.1 only)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from reconciler.apply import Run
from tests.conftest import MysqlServer, PgServer
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld
from tests.mysql_server import ThrowawayMariadb

OPENSSL = shutil.which("openssl")


def _with(dsn: str, query: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + query


def _target_error(run: Run) -> str:
    (target,) = run.targets
    assert target.status == "failed" and target.error, target
    return target.error


def _server_tls(server: MysqlServer) -> bool:
    return bool(server.sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]) or \
        server.sql("SHOW VARIABLES LIKE 'have_ssl'")[0][1] == "YES"


# -- MySQL/MariaDB without TLS: the machine's server -----------------------------------------


@pytest.fixture
def my(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    if _server_tls(mysql):
        pytest.skip("this MySQL/MariaDB server offers TLS: the no-TLS case needs one without")
    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.mark.mysql
@pytest.mark.parametrize("query", ["ssl_mode=REQUIRED", "ssl_mode=VERIFY_IDENTITY",
                                   "ssl_mode=verify_ca"])
def test_a_mysql_dsn_requiring_tls_fails_its_target_on_a_server_without_it(
        query: str, my: MyWorld) -> None:
    my.add_grant()
    run = my.run(env={my.dsn_env: _with(my.admin_dsn, query)})
    assert "requires TLS" in _target_error(run)
    assert my.account(my.login()) is None  # nothing was done in clear text
    assert my.run(env=my.env).targets[0].status == "ok"  # as the control: without it, it works


@pytest.mark.mysql
def test_an_unknown_mysql_dsn_parameter_fails_its_target(my: MyWorld) -> None:
    """libpq's spelling on a mysql:// DSN: dropping it would connect in clear text."""
    my.add_grant()
    error = _target_error(my.run(env={my.dsn_env: _with(my.admin_dsn, "sslmode=require")}))
    assert "is malformed" in error and "'sslmode'" in error and "\n" not in error
    assert my.account(my.login()) is None


# -- MySQL/MariaDB with TLS: a throwaway mariadbd --------------------------------------------


def _openssl(folder: Path, *args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=folder, check=True, capture_output=True, timeout=60)


def _certificates(folder: Path, name: str) -> None:
    """`name`-ca.pem (a CA), and with the first CA made here also server.pem and
    server-key.pem, a certificate that CA signed for IP 127.0.0.1 only."""
    _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN=jitgrant test {name} CA", "-keyout", f"{name}-ca-key.pem",
             "-out", f"{name}-ca.pem")
    if (folder / "server.pem").exists():
        return
    (folder / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    _openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server-key.pem", "-out", "server.csr")
    _openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", f"{name}-ca.pem",
             "-CAkey", f"{name}-ca-key.pem", "-CAcreateserial", "-days", "2",
             "-extfile", "san.cnf", "-out", "server.pem")


@pytest.fixture(scope="module")
def tls_mysql() -> Iterator[tuple[MysqlServer, Path]]:
    """A throwaway mariadbd that offers TLS, and the folder of its certificates."""
    if OPENSSL is None:
        pytest.skip("no openssl command to make certificates with")
    probe = ThrowawayMariadb()
    shutil.rmtree(probe.root, ignore_errors=True)
    if not probe.available:
        pytest.skip("no mariadbd to start a server with TLS")
    folder = Path(os.path.realpath(probe.root.parent)) / f"{probe.root.name}-tls"
    folder.mkdir(mode=0o755)
    try:
        _certificates(folder, "good")
        _certificates(folder, "other")
        for path in folder.iterdir():
            path.chmod(0o644)  # read by mariadbd, which may run as the mysql user
        server = ThrowawayMariadb(f"--ssl-ca={folder / 'good-ca.pem'}",
                                  f"--ssl-cert={folder / 'server.pem'}",
                                  f"--ssl-key={folder / 'server-key.pem'}")
        try:
            yield MysqlServer("mariadb-tls", server.start()), folder  # database test made
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tls_world(tls_mysql: tuple[MysqlServer, Path], tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(tls_mysql[0], tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.mark.mysql
def test_verify_identity_reaches_a_server_with_tls(
        tls_world: MyWorld, tls_mysql: tuple[MysqlServer, Path]) -> None:
    ca = tls_mysql[1] / "good-ca.pem"
    tls_world.add_grant()
    run = tls_world.run(env={tls_world.dsn_env: _with(
        tls_world.admin_dsn, f"ssl_mode=VERIFY_IDENTITY&ssl_ca={ca}")})
    assert run.targets[0].status == "ok", run.targets[0].error
    assert tls_world.account(tls_world.login()) is not None
    with tls_world.connect() as c, c.cursor() as cur:  # the login works, over TLS or not
        cur.execute("SELECT 1")


@pytest.mark.mysql
@pytest.mark.parametrize(("host", "query"), [
    ("127.0.0.1", "ssl_mode=VERIFY_CA&ssl_ca={folder}/other-ca.pem"),  # not our CA
    ("localhost", "ssl_mode=VERIFY_IDENTITY&ssl_ca={folder}/good-ca.pem"),  # not its name
], ids=["unknown-ca", "wrong-name"])
def test_a_server_certificate_that_does_not_verify_fails_the_target(
        host: str, query: str, tls_world: MyWorld, tls_mysql: tuple[MysqlServer, Path]) -> None:
    dsn = _with(tls_world.admin_dsn.replace("127.0.0.1", host),
                query.format(folder=tls_mysql[1]))
    tls_world.add_grant()
    assert "cannot connect" in _target_error(tls_world.run(env={tls_world.dsn_env: dsn}))
    assert tls_world.account(tls_world.login()) is None


@pytest.mark.mysql
def test_verify_ca_accepts_a_certificate_for_another_name(
        tls_world: MyWorld, tls_mysql: tuple[MysqlServer, Path]) -> None:
    dsn = _with(tls_world.admin_dsn.replace("127.0.0.1", "localhost"),
                f"ssl_mode=VERIFY_CA&ssl_ca={tls_mysql[1] / 'good-ca.pem'}")
    tls_world.add_grant()
    run = tls_world.run(env={tls_world.dsn_env: dsn})
    assert run.targets[0].status == "ok", run.targets[0].error


# -- PostgreSQL: libpq's sslmode ---------------------------------------------------------------


@pytest.fixture
def world(pg15: PgServer, tmp_path: Path) -> Iterator[World]:
    with pg15.conn() as c:
        row = c.execute("SHOW ssl").fetchone()
    if row is None or row[0] != "off":
        pytest.skip("this PostgreSQL offers TLS: the no-TLS case needs one without")
    w = World(pg15, tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_a_postgres_dsn_requiring_tls_fails_its_target_on_a_server_without_it(
        mode: str, world: World) -> None:
    world.add_grant()
    dsn = make_conninfo(world.admin_dsn, sslmode=mode)
    error = _target_error(world.run(env={world.dsn_env: dsn}))
    assert "cannot connect to " in error
    assert f"with TLS (sslmode={mode} in ${world.dsn_env})" in error
    assert world.role(world.login()) is None
    assert world.run().targets[0].status == "ok"  # the control: without sslmode it works
