"""The admin DSN's password never shows: not when the driver cannot parse the DSN (libpq then
quotes all of it), not when a server message happens to quote part of it. Each case runs the
real `jitgrant apply` with a healthy target beside the broken one, so an audit record is
written and committed, and the password is looked for in everything jitgrant wrote."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.credentials import new_password
from tests.conftest import MysqlServer, PgServer
from tests.helpers import git
from tests.integration.conftest import World


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


@pytest.fixture
def world(pg15: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(pg15, tmp_path / "repo")
    yield w
    w.cleanup()


def password() -> str:
    """A generated password (so the suite's secret scan looks for it too), with characters
    that URIs percent-encode or not."""
    return new_password()


# {pw}: the password; {pg}/{my}: host and port of the real servers.
PG_MALFORMED = {
    "leading-space": " postgresql://root:{pw}@{pg}/postgres",
    "quoted": '"postgresql://root:{pw}@{pg}/postgres"',
    "one-slash": "postgres:/root:{pw}@{pg}/postgres",
    "no-colon": "postgresql//root:{pw}@{pg}/postgres",
    "bad-percent": "postgresql://root:{pw}%zz@{pg}/postgres",
    "keyword-quote": "host=127.0.0.1 password='{pw} user=root",
}
MYSQL_MALFORMED = {
    "port-out-of-range": "mysql://root:{pw}@127.0.0.1:99999/test",
    "unclosed-bracket": "mysql://root:{pw}@[::1/test",
    "quoted": '"mysql://root:{pw}@{my}/test"',
    "slash-in-password": "mysql://root:{pw}/x@{my}/test",
    "leading-space-bad-port": " mysql://root:{pw}@127.0.0.1:7x/test",
}
# DSNs the drivers parse, where the server's reply quotes the password (it is also the
# database or the user name): only the scrub of driver messages hides it.
QUOTED_BY_SERVER = {
    "postgres": "postgresql://root:{pw}@{pg}/{pw}",
    "mysql": "mysql://{pw}:{pw}@{my}/test",
}


def broken_target(w: World, engine: str, dsn: str) -> dict[str, str]:
    """db1 healthy with one grant (a change: the audit is committed) and `bad`, whose DSN is
    `dsn`; the environment for both."""
    dsn_env = "JG_BAD_" + secrets.token_hex(3).upper()
    policy = (w.repo.root / "policies" / "main.yaml").read_text()
    w.repo.write("policies/main.yaml", policy.replace("targets:\n", (
        f"targets:\n  bad:\n    engine: {engine}\n    dsn_env: {dsn_env}\n"
        f"    environment: production\n    role_prefix: {w.prefix[:-1]}x_\n"), 1))
    w.repo.commit("a target with a broken DSN")
    w.add_grant()
    return {**w.env, dsn_env: dsn}


def jitgrant(w: World, env: dict[str, str], *command: str) -> Result:
    return CliRunner().invoke(main, [*command, "--repo", str(w.repo.root)], env=env,
                              catch_exceptions=False)


def assert_nowhere(w: World, pw: str, *results: Result) -> None:
    for result in results:
        assert result.exit_code in (1, 2), (result.exit_code, result.output)
        assert "Traceback" not in result.output and "internal error" not in result.output
        assert pw not in result.stdout and pw not in result.stderr
    audit = list((w.repo.root / "audit").rglob("*.json"))
    assert len(audit) == 1, audit  # the healthy target's change was recorded...
    assert pw not in audit[0].read_text()
    assert git(w.repo.root, "status", "--porcelain") == ""  # ...and committed
    history = git(w.repo.root, "log", "-p", "--all")
    assert "audit/" in history and pw not in history


def _servers(pg: PgServer, mysql: MysqlServer | None) -> dict[str, str]:
    p = pg.params
    out = {"pg": f"{p.get('host', '127.0.0.1')}:{p.get('port', '5432')}"}
    if mysql is not None:
        from reconciler.engines.mysql import parse_dsn
        args = parse_dsn(mysql.admin_dsn)
        out["my"] = f"{args['host']}:{args['port']}"
    return out


def _run_case(w: World, engine: str, template: str, servers: dict[str, str]) -> None:
    pw = password()
    env = broken_target(w, engine, template.format(pw=pw, **servers))
    applied = jitgrant(w, env, "apply")
    assert applied.exit_code == 1
    bad = [line for line in applied.stdout.splitlines() if line.startswith("target bad ")]
    assert len(bad) == 1 and "error: cannot connect" in bad[0], applied.stdout
    assert "target db1 (postgres): 1 change" in applied.stdout
    if template not in QUOTED_BY_SERVER.values():
        assert "is malformed" in bad[0], bad[0]
    planned = jitgrant(w, env, "plan")
    shown = jitgrant(w, env, "standing", "--target", "bad")
    assert shown.exit_code == 1 and "jitgrant: error: bad: cannot connect" in shown.stderr
    assert_nowhere(w, pw, applied, planned, shown)


@pytest.mark.parametrize("case", sorted(PG_MALFORMED))
def test_a_malformed_postgres_dsn_never_shows_its_password(
        case: str, world: World, pg15: PgServer) -> None:
    _run_case(world, "postgres", PG_MALFORMED[case], _servers(pg15, None))


@pytest.mark.mysql
@pytest.mark.parametrize("case", sorted(MYSQL_MALFORMED))
def test_a_malformed_mysql_dsn_never_shows_its_password(
        case: str, world: World, pg15: PgServer, mysql: MysqlServer) -> None:
    _run_case(world, "mysql", MYSQL_MALFORMED[case], _servers(pg15, mysql))


def test_a_server_message_quoting_the_postgres_password_is_masked(
        world: World, pg15: PgServer) -> None:
    _run_case(world, "postgres", QUOTED_BY_SERVER["postgres"], _servers(pg15, None))


@pytest.mark.mysql
def test_a_server_message_quoting_the_mysql_password_is_masked(
        world: World, pg15: PgServer, mysql: MysqlServer) -> None:
    _run_case(world, "mysql", QUOTED_BY_SERVER["mysql"], _servers(pg15, mysql))
