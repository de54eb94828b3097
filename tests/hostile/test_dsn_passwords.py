"""Issue 11, finding 8: an admin DSN whose password the driver cannot encode (a non-ASCII
character, a %FF that is not UTF-8) made `plan`, `apply`, `status` and `standing` print
`internal error: UnicodeEncodeError('latin-1', '<the password>', ...)`. Every message goes
through one scrubbing now, reprs and tracebacks included, and a short password is masked as a
token or the message withheld, never garbled around it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.engines.mysql import account, literal
from reconciler.redact import MASKED, WITHHELD, dsn_secrets, scrub, scrubbed_line
from tests.conftest import MysqlServer, PgServer
from tests.helpers import grant
from tests.integration.conftest import World


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


@pytest.fixture
def world(pg15: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(pg15, tmp_path / "repo")
    yield w
    w.cleanup()


def _pg_host(pg: PgServer) -> str:
    return f"{pg.params.get('host', '127.0.0.1')}:{pg.params.get('port', '5432')}"


def _my_host(mysql: MysqlServer) -> str:
    from reconciler.engines.mysql import parse_dsn
    args = parse_dsn(mysql.admin_dsn)
    return f"{args['host']}:{args['port']}"


def _with_bad_target(w: World, engine: str, dsn: str) -> dict[str, str]:
    """db1 healthy; `bad` with `dsn`, and a grant on it (so `status` reads it too)."""
    dsn_env = "JG_BAD_" + secrets.token_hex(3).upper()
    policy = (w.repo.root / "policies" / "main.yaml").read_text()
    w.repo.write("policies/main.yaml", policy.replace("targets:\n", (
        f"targets:\n  bad:\n    engine: {engine}\n    dsn_env: {dsn_env}\n"
        f"    environment: production\n    role_prefix: {w.prefix[:-1]}x_\n"), 1))
    w.repo.write("grants/bad/alice.yaml", grant(target="bad"))
    w.repo.commit("a target whose DSN has a password the driver cannot encode")
    return {**w.env, dsn_env: dsn}


def _run(w: World, env: dict[str, str], *command: str) -> Result:
    return CliRunner().invoke(main, [*command, "--repo", str(w.repo.root)], env=env,
                              catch_exceptions=False)


def _assert_never_shown(w: World, env: dict[str, str], tag: str) -> None:
    """`tag` is in every form of the password (raw, percent-decoded, escaped by a repr)."""
    for command in (["plan"], ["apply"], ["status", "--format", "json"],
                    ["standing", "--target", "bad"], ["-v", "plan"]):
        result = _run(w, env, *command)
        shown = result.stdout + result.stderr
        assert tag not in shown, (command, shown)
        assert "internal error" not in shown and result.exit_code != 3, (command, shown)
    for audit in (w.repo.root / "audit").rglob("*.json"):
        assert tag not in audit.read_text()


@pytest.mark.mysql
@pytest.mark.parametrize("written", ["Adm1n%E2%82%AC{tag}", "Adm1n\u20ac{tag}",
                                     "Adm1n%FF{tag}"], ids=["encoded", "raw", "not-utf8"])
def test_a_mysql_password_the_driver_cannot_encode_never_shows(
        written: str, world: World, pg15: PgServer, mysql: MysqlServer) -> None:
    tag = secrets.token_hex(6)
    dsn = f"mysql://jitgrant_nobody:{written.format(tag=tag)}@{_my_host(mysql)}/test"
    _assert_never_shown(world, _with_bad_target(world, "mysql", dsn), tag)


@pytest.mark.parametrize("written", ["Adm1n%FF{tag}", "Adm1n%E2%82%AC{tag}"],
                         ids=["not-utf8", "encoded"])
def test_a_postgres_password_that_is_not_utf8_never_shows(
        written: str, world: World, pg15: PgServer) -> None:
    tag = secrets.token_hex(6)
    dsn = f"postgresql://jitgrant_nobody:{written.format(tag=tag)}@{_pg_host(pg15)}/postgres"
    env = _with_bad_target(world, "postgres", dsn)
    _assert_never_shown(world, env, tag)
    result = _run(world, env, "standing", "--target", "bad")
    assert result.exit_code == 1 and "jitgrant: error: bad: cannot connect" in result.stderr


@pytest.mark.mysql
def test_a_non_ascii_mysql_password_logs_in(world: World, mysql: MysqlServer) -> None:
    """The password goes to the server as UTF-8, as the mysql client sends it."""
    user, password = f"jg_{secrets.token_hex(4)}", f"Adm1n\u20ac{secrets.token_hex(6)}"
    mysql.sql(f"CREATE USER {account(user)} IDENTIFIED BY {literal(password)}",
              f"GRANT SELECT ON mysql.* TO {account(user)}")
    try:
        encoded = password.replace("\u20ac", "%E2%82%AC")
        env = _with_bad_target(world, "mysql", f"mysql://{user}:{encoded}@{_my_host(mysql)}/")
        result = _run(world, env, "standing", "--target", "bad", "--format", "json")
        assert result.exit_code in (0, 2), result.stderr
        assert "cannot connect" not in result.stderr
    finally:
        mysql.sql(f"DROP USER {account(user)}")


# -- masking a short password ------------------------------------------------------------------


def test_a_short_password_is_masked_as_a_token_and_never_garbles_a_word() -> None:
    hide = dsn_secrets("mysql://root:x@127.0.0.1/test")
    assert scrub("Access denied for user 'x'@'localhost'", hide) == \
        f"Access denied for user '{MASKED}'@'localhost'"
    # Masked inside 'unexpectedly', the word around the mask would give the password away.
    assert scrub("the server closed the connection unexpectedly", hide) == WITHHELD
    line = scrubbed_line("lost   connection unexpectedly", hide, "OperationalError")
    assert line == f"OperationalError ({WITHHELD})"


def test_every_form_of_a_password_is_a_secret() -> None:
    hide = dsn_secrets("postgresql://u:Adm1n%FFs%E2%82%ACcret@h/db")
    for form in ("Adm1n%FFs%E2%82%ACcret", "Adm1n\\xffs\\xe2\\x82\\xaccret",
                 "Adm1n\ufffds\u20accret", "Adm1n\\ufffds\\u20accret",
                 "Adm1n\xffs\xe2\x82\xaccret"):
        assert scrub(f"failed: {form} here", hide) == f"failed: {MASKED} here", form
