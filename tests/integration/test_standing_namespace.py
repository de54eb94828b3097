"""Logins inside the namespace that jitgrant leaves alone (superusers, MySQL administrators,
never_touch) and that can log in: `standing` lists them and `plan` warns about them, even
without jitgrant's marker or a grant file that maps to them. Otherwise a `CREATE ROLE
jitq_hidden LOGIN SUPERUSER` would look like temporary access and be seen by nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from reconciler.cli import main
from reconciler.engines.mysql import account
from tests.conftest import MysqlServer
from tests.helpers import AccessRepo, utc
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld

LEFT_ALONE = "; it can log in, and no grant ends that"


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


def jitgrant(repo: AccessRepo, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--repo", str(repo.root)], env=env,
                              catch_exceptions=False)


def standing(repo: AccessRepo, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    result = jitgrant(repo, env, "standing", "--format", "json")
    assert result.exit_code == 2, result.output
    return {row["login"]: row for row in json.loads(result.stdout)["standing"]}


def test_postgres_namespace_logins_jitgrant_leaves_alone_are_shown(world: World) -> None:
    p = world.prefix
    world.write_policy(never_touch=[p + "kept", p + "kept_group"])
    world.add_grant()
    assert not world.run().failed  # jitgrant's own login, with its grant's expiry
    soon = sql.Literal(str(utc(days=30))).as_string(None)
    with world.server.conn() as c:
        for name, options in (("hidden", "LOGIN SUPERUSER"), ("kept", "LOGIN"),
                              ("kept_group", "NOLOGIN"), ("stray", "LOGIN"),
                              ("dated", "LOGIN SUPERUSER VALID UNTIL " + soon)):
            c.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(p + name)))

    found = {k: (v["superuser"], v["why"]) for k, v in standing(world.repo, world.env).items()
             if k.startswith(p)}
    assert found == {
        p + "hidden": (True, "no VALID UNTIL; inside the namespace but a superuser: jitgrant "
                             "leaves it alone"),
        p + "kept": (False, "no VALID UNTIL; inside the namespace but in never_touch: "
                            "jitgrant leaves it alone"),
        p + "stray": (False, "no VALID UNTIL; inside the namespace: apply revokes it or puts "
                             "its grant's expiry back"),
    }

    plan = jitgrant(world.repo, world.env, "plan")
    assert plan.exit_code == 2, plan.output  # the stray login is revoked: a change, no error
    warnings = sorted(line for line in plan.stderr.splitlines() if "warning:" in line)
    assert warnings == [
        f"policies/main.yaml:2: warning: target db1: login {p}dated is left alone: it is a "
        f"superuser{LEFT_ALONE}",
        f"policies/main.yaml:2: warning: target db1: login {p}hidden is left alone: it is a "
        f"superuser{LEFT_ALONE}",
        f"policies/main.yaml:2: warning: target db1: login {p}kept is left alone: it is "
        f"listed in never_touch{LEFT_ALONE}",
    ], plan.stderr
    assert "kept_group" not in plan.stderr  # never_touch and NOLOGIN: nothing to say
    assert f"revoke {p}stray" in plan.stdout
    run = world.run()
    assert not run.failed
    assert world.role(p + "stray") is None
    for name in ("hidden", "kept", "kept_group", "dated"):
        assert world.role(p + name) is not None, name


@pytest.fixture
def my_world(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.cleanup()  # every account with the prefix, the administrators too


@pytest.mark.mysql
def test_mysql_namespace_administrators_and_never_touch_are_shown(my_world: MyWorld) -> None:
    p = my_world.prefix
    my_world.write_policy(never_touch=[p + "keep"])
    my_world.add_grant()
    assert not my_world.run().failed
    accounts = {name: account(p + name) for name in ("adm", "creator", "off", "keep", "stray")}
    my_world.server.sql(
        f"CREATE USER {accounts['adm']} IDENTIFIED BY 'x-1'",
        f"GRANT SUPER ON *.* TO {accounts['adm']}",
        f"CREATE USER {accounts['creator']} IDENTIFIED BY 'x-2'",
        f"GRANT CREATE USER ON *.* TO {accounts['creator']}",
        f"CREATE USER {accounts['off']} IDENTIFIED BY 'x-3' ACCOUNT LOCK",
        f"GRANT SUPER ON *.* TO {accounts['off']}",
        f"CREATE USER {accounts['keep']} IDENTIFIED BY 'x-4'",
        f"CREATE USER {accounts['stray']} IDENTIFIED BY 'x-5'")

    admin = "an administrator (SUPER, CREATE USER or GRANT OPTION on *.*)"
    found = {k: (v["superuser"], v["why"])
             for k, v in standing(my_world.repo, my_world.env).items() if k.startswith(p)}
    assert found == {
        f"{p}adm@%": (True, f"unlocked, no password expiry; inside the namespace but {admin}: "
                            "jitgrant leaves it alone"),
        f"{p}creator@%": (False, f"unlocked, no password expiry; inside the namespace but "
                                 f"{admin}: jitgrant leaves it alone"),
        f"{p}keep@%": (False, "unlocked, no password expiry; inside the namespace but in "
                              "never_touch: jitgrant leaves it alone"),
    }  # not the locked one, not jitgrant's login, not the stray one apply revokes

    plan = my_world.run(execute=False)
    warnings = sorted(p.message for p in plan.problems if p.severity == "warning")
    server_admin = "it administers the server (SUPER, CREATE USER or GRANT OPTION on *.*)"
    assert warnings == [
        f"target db1: login {p}adm is left alone: {server_admin}{LEFT_ALONE}",
        f"target db1: login {p}creator is left alone: {server_admin}{LEFT_ALONE}",
        f"target db1: login {p}keep is left alone: it is listed in never_touch{LEFT_ALONE}",
    ]
    assert not plan.failed
    assert not my_world.run().failed
    assert my_world.account(p + "stray") is None
    for name in ("adm", "creator", "off", "keep"):
        assert my_world.account(p + name) is not None, name
