"""Offboarding (issue 5): a person set `active: false`, or removed from people, loses every
login on the next apply: open sessions ended, the login dropped, cause `offboarded` in the
audit; `validate` keeps passing and warns about the grant files left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import yaml
from click.testing import CliRunner

from reconciler import audit
from reconciler.cli import main
from reconciler.credentials import new_password, scram_sha256_verifier
from tests.helpers import AccessRepo
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld

POLICY = "policies/main.yaml"


def offboard(repo: AccessRepo, handle: str, how: str) -> None:
    data = yaml.safe_load((repo.root / POLICY).read_text())
    if how == "inactive":
        data["people"][handle]["active"] = False
    else:
        del data["people"][handle]
    repo.write(POLICY, data)
    repo.commit(f"{handle} left ({how})")


def audited_causes(repo: AccessRepo, run: Any) -> list[tuple[str, str, int]]:
    rel = audit.persist(repo.root, run, commit=False)
    assert rel is not None
    record = json.loads((repo.root / rel).read_text())
    return [(a["action"], a["cause"], a["sessions_ended"]) for a in record["actions"]]


def validate(repo: Path) -> Any:
    return CliRunner().invoke(main, ["validate", "--repo", str(repo)])


@pytest.mark.parametrize("how", ["inactive", "removed"])
def test_postgres_session_ended_login_dropped(scram_world: World, how: str) -> None:
    world = scram_world
    password = new_password()
    world.add_grant("bob", grantee="bob", verifier=scram_sha256_verifier(password))
    world.add_grant("alice")
    assert not world.run().failed
    session = psycopg.connect(world.server.login_dsn(world.login("bob"), password),
                              autocommit=True)
    offboard(world.repo, "bob", how)
    run = world.run()
    assert not run.failed, run.targets[0].results
    assert audited_causes(world.repo, run) == [("revoke", "offboarded", 1)]
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    assert world.role(world.login("bob")) is None
    assert world.role(world.login("alice")) is not None  # only bob's access went
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(world.server.login_dsn(world.login("bob"), password))
    result = validate(world.repo.root)
    assert result.exit_code == 0, result.output
    assert "grants/db1/bob.yaml" in result.output and "warning" in result.output


@pytest.mark.mysql
def test_mysql_session_killed_account_dropped(my: MyWorld) -> None:  # noqa: F811
    my.add_grant("bob", grantee="bob")
    my.add_grant("alice")
    assert not my.run().failed
    session = my.connect("bob")
    offboard(my.repo, "bob", "inactive")
    run = my.run()
    assert not run.failed, run.targets[0].results
    assert audited_causes(my.repo, run) == [("revoke", "offboarded", 1)]
    with pytest.raises(pymysql.MySQLError), session.cursor() as cur:
        cur.execute("SELECT 1")
    assert my.account(my.login("bob")) is None
    assert my.account(my.login("alice")) is not None
