"""`jitgrant standing` against real servers: hand-made permanent logins are found, jitgrant's
own logins, the admin and never_touch are not. The servers are shared (they have postgres and
root of their own): only the roles a test makes are asserted about, and they are dropped."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from reconciler.cli import main
from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.engines.mysql import account, parse_dsn, standing_logins
from reconciler.model import Target
from tests.conftest import MysqlServer, PgServer
from tests.helpers import AccessRepo, policy, utc
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld
from tests.mysql_server import ThrowawayMariadb

CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22  # the client capability flag


def set_own_password(conn: Any, password: str) -> None:
    """What the sandbox session allows (no SELECT there, so the flavour comes from the
    handshake)."""
    mariadb = "mariadb" in conn.get_server_info().lower()
    with conn.cursor() as cur:
        cur.execute("SET PASSWORD = PASSWORD(%s)" if mariadb else "SET PASSWORD = %s",
                    [password])


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


def standing(repo: AccessRepo, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["standing", "--repo", str(repo.root), *args], env=env,
                              catch_exceptions=False)


def found(result: Result) -> dict[str, dict[str, Any]]:
    data = json.loads(result.stdout)
    return {row["login"]: row for row in data["standing"]}


class PgRoles:
    """Login roles outside any namespace, made by hand as a DBA would, dropped afterwards."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.tag = f"s{secrets.token_hex(3)}_"
        self.made: list[str] = []

    def create(self, suffix: str, options: str) -> str:
        name = self.tag + suffix
        with self.server.conn() as c:
            c.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))
        self.made.append(name)
        return name

    def drop(self) -> None:
        with self.server.conn() as c:
            for name in self.made:
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def pg_roles(pg: PgServer) -> Iterator[PgRoles]:
    roles = PgRoles(pg)
    yield roles
    roles.drop()


def test_postgres_standing_logins(world: World, pg_roles: PgRoles) -> None:
    never = pg_roles.tag + "app_service"
    world.write_policy(never_touch=[never])
    world.add_grant(verifier=scram_sha256_verifier(new_password()))
    assert not world.run().failed
    assert world.role(world.login()) is not None  # jitgrant's login exists: not standing
    forever = pg_roles.create("forever", "LOGIN")
    infinite = pg_roles.create("infinite", "LOGIN VALID UNTIL 'infinity'")
    boss = pg_roles.create("boss", "LOGIN SUPERUSER")
    pg_roles.create("dated", "LOGIN VALID UNTIL " + sql.Literal(str(utc(days=30)))
                    .as_string(None))
    pg_roles.create("group", "NOLOGIN")
    pg_roles.create("app_service", "LOGIN")
    result = standing(world.repo, world.env, "--format", "json")
    assert result.exit_code == 2, result.stderr
    mine = {k: v for k, v in found(result).items() if k.startswith(pg_roles.tag)}
    assert mine == {
        forever: {"target": "db1", "login": forever, "superuser": False,
                  "why": "no VALID UNTIL"},
        infinite: {"target": "db1", "login": infinite, "superuser": False,
                   "why": "VALID UNTIL infinity"},
        boss: {"target": "db1", "login": boss, "superuser": True, "why": "no VALID UNTIL"},
    }
    everyone = found(result)
    assert world.login() not in everyone
    assert not any(name.startswith(world.prefix) for name in everyone)
    admin = world.server.params["user"]
    assert admin not in everyone
    table = standing(world.repo, world.env)
    assert table.exit_code == 2
    assert table.stdout.splitlines()[0].split() == ["TARGET", "LOGIN", "SUPERUSER", "WHY"]
    assert any(line.split()[:3] == ["db1", boss, "yes"] for line in table.stdout.splitlines())


def test_postgres_none_found_is_exit_0(pg18: PgServer, tmp_path: Path) -> None:
    """The embedded server is this session's own: its only login is the admin."""
    w = World(pg18, tmp_path / "repo")
    try:
        result = standing(w.repo, w.env)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "no standing access on db1"
    finally:
        w.cleanup()


def test_an_unreadable_target_is_exit_1_and_the_others_still_report(
        world: World, pg_roles: PgRoles) -> None:
    forever = pg_roles.create("forever", "LOGIN")
    policy_file = world.repo.root / "policies" / "main.yaml"
    policy_file.write_text(policy_file.read_text().replace(
        "targets:\n", "targets:\n  down:\n    engine: postgres\n    dsn_env: JG_DOWN_DSN\n"
        "    environment: production\n", 1))
    world.repo.commit("a target that is down")
    env = {**world.env, "JG_DOWN_DSN": "postgresql://x@127.0.0.1:1/postgres?connect_timeout=2"}
    result = standing(world.repo, env, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["targets_read"] == ["db1"] and list(data["errors"]) == ["down"]
    assert forever in found(result)
    assert "jitgrant: error: down: cannot connect" in result.stderr
    only = standing(world.repo, env, "--target", "db1", "--format", "json")
    assert only.exit_code == 2 and forever in found(only)
    unset = standing(world.repo, world.env, "--target", "down")
    assert unset.exit_code == 1
    assert "down: environment variable JG_DOWN_DSN is not set" in unset.stderr
    # Issue 12, finding 4: a target skipped for its unset DSN was not read either.
    skipped = standing(world.repo, world.env, "--format", "json")
    assert skipped.exit_code == 1 and forever in found(skipped)
    assert json.loads(skipped.stdout)["skipped"] == ["down"]
    table = standing(world.repo, world.env)
    assert table.exit_code == 1
    assert "note: down: not read, its DSN environment variable is not set" in table.stderr


def test_no_dsn_at_all_is_one_line(world: World) -> None:
    result = standing(world.repo, {})
    assert result.exit_code == 1
    assert result.stderr == ("jitgrant: error: no target has its DSN environment variable "
                             f"set: db1 ({world.dsn_env})\n")


@pytest.fixture
def my_world(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.mark.mysql
def test_mysql_standing_accounts(my_world: MyWorld) -> None:
    tag = f"s{secrets.token_hex(3)}_"
    made = {name: account(tag + name, host) for name, host in (
        ("forever", "%"), ("local", "localhost"), ("locked", "%"), ("aging", "%"),
        ("expired", "%"), ("app_service", "%"), ("boss", "%"))}
    my_world.write_policy(never_touch=[tag + "app_service"])
    my_world.add_grant()
    assert not my_world.run().failed
    server = my_world.server
    try:
        server.sql(
            f"CREATE USER {made['forever']} IDENTIFIED BY 'x-1'",
            f"CREATE USER {made['local']} IDENTIFIED BY 'x-2'",
            f"CREATE USER {made['locked']} IDENTIFIED BY 'x-3' ACCOUNT LOCK",
            f"CREATE USER {made['aging']} IDENTIFIED BY 'x-4' PASSWORD EXPIRE INTERVAL 30 DAY",
            f"CREATE USER {made['expired']} IDENTIFIED BY 'x-5' PASSWORD EXPIRE",
            f"CREATE USER {made['app_service']} IDENTIFIED BY 'x-6'",
            f"CREATE USER {made['boss']} IDENTIFIED BY 'x-7'",
            f"GRANT SUPER ON *.* TO {made['boss']}")
        result = standing(my_world.repo, my_world.env, "--format", "json")
        assert result.exit_code == 2, result.stderr
        everyone = found(result)
        mine = {k: (v["superuser"], v["why"]) for k, v in everyone.items()
                if k.startswith(tag)}
        why = "unlocked, no password expiry"
        assert mine == {
            f"{tag}forever@%": (False, why), f"{tag}local@localhost": (False, why),
            f"{tag}boss@%": (True, why),
            # A password lifetime or an expired password ends nothing: the holder sets the
            # next password (an expired one from the sandbox session, below).
            f"{tag}aging@%": (False, "unlocked; password lifetime 30 days, but its holder "
                                     "sets the next one"),
            f"{tag}expired@%": (False, "unlocked; its password has expired, but the old one "
                                       "still logs in to set a new one")}
        assert not any(k.startswith(my_world.prefix) for k in everyone)  # jitgrant's own
        admin = server.sql("SELECT CURRENT_USER()")[0][0]
        assert admin not in everyone
        # What `mariadb --connect-expired-password` does: a client that says it handles
        # expired passwords gets a session in which it may set a new one, whatever
        # disconnect_on_expired_password says (it only concerns other clients).
        args = parse_dsn(server.admin_dsn)
        sandbox = pymysql.connect(host=args["host"], port=args["port"], user=tag + "expired",
                                  password="x-5", client_flag=CAN_HANDLE_EXPIRED_PASSWORDS)
        with sandbox:
            set_own_password(sandbox, "x-5b")
        server.login(tag + "expired", "x-5b").close()  # and it is a normal account again
    finally:
        server.sql("SELECT 1", *(f"DROP USER IF EXISTS {a}" for a in made.values()))


@pytest.mark.mysql
def test_an_expired_password_is_standing_even_with_disconnect_on_expired_password() -> None:
    """disconnect_on_expired_password = ON only turns away clients that cannot handle an
    expired password; one that can (`mariadb --connect-expired-password`) still gets the
    session in which it sets a new password. A throwaway server, since the setting is global."""
    server = ThrowawayMariadb()
    if not server.available:
        pytest.skip("no mariadbd for a throwaway server")
    try:
        dsn = server.start()
        mine = MysqlServer("throwaway", dsn)
        mine.sql("SET GLOBAL disconnect_on_expired_password = ON",
                 "CREATE USER 'lapsed'@'%' IDENTIFIED BY 'old-1' PASSWORD EXPIRE")
        rows = standing_logins(Target("db1", "mysql", "JG_X", role_prefix="jit_"), dsn)
        assert ("lapsed@%", False, "unlocked; its password has expired, but the old one still "
                                   "logs in to set a new one") in rows
        args = parse_dsn(dsn)
        with pytest.raises(pymysql.MySQLError, match="expired"):
            mine.login("lapsed", "old-1")  # a client that cannot handle it is turned away
        sandbox = pymysql.connect(host=args["host"], port=args["port"], user="lapsed",
                                  password="old-1", client_flag=CAN_HANDLE_EXPIRED_PASSWORDS)
        with sandbox:
            set_own_password(sandbox, "new-1")
        mine.login("lapsed", "new-1").close()
    finally:
        server.stop()


@pytest.mark.parametrize("dsn", ["mysql://root@127.0.0.1:99999/test", "mysql://root@[::1/test",
                                 "mysql://root@127.0.0.1:port/test"])
def test_a_malformed_mysql_dsn_is_one_line_and_exit_1(tmp_path: Path, dsn: str) -> None:
    """Not a crash (exit 3) in urllib, in standing, plan or apply; and with no target read,
    standing does not claim there is no standing access."""
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", policy(engine="mysql", dsn_env="JG_MY_BAD"))
    repo.commit("policy")
    env = {"JG_MY_BAD": dsn}
    result = standing(repo, env)
    assert result.exit_code == 1, result.output
    assert result.stdout == "standing access unknown: no target could be read\n"
    assert result.stderr.startswith("jitgrant: error: db1: cannot connect: the DSN in "
                                    "$JG_MY_BAD is malformed: ")
    assert len(result.stderr.splitlines()) == 1
    for command in ("plan", "apply"):
        other = CliRunner().invoke(main, [command, "--repo", str(repo.root)], env=env,
                                   catch_exceptions=False)
        assert other.exit_code == 1, (command, other.output)
        assert "target db1 (mysql): error: cannot connect: the DSN in $JG_MY_BAD is " \
               "malformed" in other.stdout, other.output
