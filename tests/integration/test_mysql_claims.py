"""README claims about MySQL/MariaDB targets that had no test (issue 12, finding 11):
`status` fills the ON SERVER column from a MariaDB target, and `standing` lists another host's
account that carries the reconciler's user name inside the namespace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.engines.mysql import account
from tests.integration.test_mysql import MyWorld
from tests.integration.test_mysql_least_privilege import lp  # noqa: F401 - a fixture

pytestmark = pytest.mark.mysql


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


def command(world: MyWorld, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, [*args, "--repo", str(world.repo.root), "--format",
                                       "json"], env=world.env, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def login_row(world: MyWorld) -> dict[str, Any]:
    """alice's row in `status --format json`."""
    rows: dict[str, dict[str, Any]] = {
        g["login"]: g for g in command(world, "status", "--as", "alice")["grants"]}
    return rows[world.login()]


def test_status_reads_the_accounts_on_a_mysql_target(my: MyWorld) -> None:
    my.add_grant()
    before = login_row(my)
    assert before["login_exists"] is False  # not applied yet
    assert not my.run().failed
    after = login_row(my)
    assert (after["login_exists"], after["login_locked"]) == (True, False)
    my.server.sql(f"ALTER USER {account(my.login())} ACCOUNT LOCK")
    locked = login_row(my)
    assert (locked["login_exists"], locked["login_locked"]) == (True, True)


def test_standing_lists_another_hosts_account_with_the_reconcilers_name(
        lp: MyWorld) -> None:  # noqa: F811
    twin_user = lp.prefix + "reconciler"
    lp.server.sql(f"CREATE USER {account(twin_user, 'localhost')} IDENTIFIED BY 'x-1'")
    try:
        found = {row["login"]: row for row in command(lp, "standing")["standing"]}
        assert f"{twin_user}@localhost" in found
        why = found[f"{twin_user}@localhost"]["why"]
        assert "inside the namespace" in why and "jitgrant leaves it alone" in why
        assert f"{twin_user}@%" not in found  # the connecting account itself is left out
    finally:
        lp.server.sql(f"DROP USER IF EXISTS {account(twin_user, 'localhost')}")
