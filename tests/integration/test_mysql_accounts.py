"""Accounts in a MySQL/MariaDB namespace that jitgrant must not take for its own logins:
administrators named with the prefix, the same user name under other hosts, extra ways to log in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engines.mysql import account
from tests.conftest import MysqlServer
from tests.integration.test_mysql import MyWorld, actions

pytestmark = pytest.mark.mysql


@pytest.fixture
def my(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.cleanup()


def grants_of(my: MyWorld, user: str, host: str = "%") -> list[Any]:
    return sorted(r[0] for r in my.server.sql(f"SHOW GRANTS FOR {account(user, host)}"))


ADMIN_GRANTS = {
    "dba": "GRANT ALL PRIVILEGES ON *.* TO {acct}",
    "super": "GRANT SUPER ON *.* TO {acct}",
    "creator": "GRANT CREATE USER ON *.* TO {acct}",
    "granter": "GRANT SELECT ON *.* TO {acct} WITH GRANT OPTION",
}


def test_administrators_in_the_namespace_are_left_alone(my: MyWorld) -> None:
    """SUPER, ALL PRIVILEGES, CREATE USER or GRANT OPTION on *.*: the PostgreSQL superuser rule.
    A plain account with only SELECT on *.* is still an unknown login and goes."""
    names = {kind: my.prefix + kind for kind in ADMIN_GRANTS}
    plain = my.prefix + "plain"
    statements = [f"CREATE USER {account(plain)} IDENTIFIED BY 'x'",
                  f"GRANT SELECT ON *.* TO {account(plain)}"]
    for kind, name in names.items():
        statements += [f"CREATE USER {account(name)} IDENTIFIED BY 'x'",
                       ADMIN_GRANTS[kind].format(acct=account(name))]
    my.server.sql(*statements)
    before = {name: (my.account(name), grants_of(my, name)) for name in names.values()}
    assert actions(my.run(execute=False)) == [("revoke", plain, "unknown")]
    run = my.run()
    assert not run.failed, (run.targets[0].results, run.problems)
    assert actions(run) == [("revoke", plain, "unknown")]
    assert my.account(plain) is None
    assert {name: (my.account(name), grants_of(my, name)) for name in names.values()} == before
    assert actions(my.run()) == []


def test_a_granted_login_made_an_administrator_is_reported_not_touched(my: MyWorld) -> None:
    """Without a marker comment jitgrant cannot tell its own login given SUPER from an admin's
    account with the same name: it leaves it alone and says so (exit 1), like a superuser."""
    my.add_grant()
    my.run()
    acct = account(my.login())
    my.server.sql(f"GRANT SUPER ON *.* TO {acct}", f"ALTER USER {acct} IDENTIFIED BY 'other'")
    before = (my.account(my.login()), grants_of(my, my.login()))
    run = my.run()
    assert actions(run) == []
    assert run.failed
    assert [p.message for p in run.problems] == [
        f"target db1: login {my.login()} is left alone: it administers the server "
        "(SUPER, CREATE USER or GRANT OPTION on *.*)"]
    assert (my.account(my.login()), grants_of(my, my.login())) == before
