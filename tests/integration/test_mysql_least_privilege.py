"""The reconciler as a MariaDB account with only the README's privileges."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.credentials import new_password
from reconciler.engines.mysql import account, identifier, literal, parse_dsn
from tests.conftest import MysqlServer
from tests.helpers import utc
from tests.integration.test_mysql import MyWorld, actions

pytestmark = pytest.mark.mysql

# The README's statements for MariaDB, with {placeholders}.
SETUP = [
    "CREATE USER {admin} IDENTIFIED BY {password}",
    "GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO {admin}",
    "GRANT SELECT, UPDATE ON mysql.* TO {admin}",
    "GRANT {group} TO {admin} WITH ADMIN OPTION",
    "GRANT EVENT ON test.* TO {admin}",
]


@pytest.fixture
def lp(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    if "mariadb" not in str(mysql.sql("SELECT VERSION()")[0][0]).lower():
        pytest.skip("these are MariaDB's statements")
    w = MyWorld(mysql, tmp_path / "repo")
    admin_user = f"{w.prefix}reconciler"  # inside the namespace: must never be touched
    password = new_password()
    names = {"admin": account(admin_user), "password": literal(password),
             "group": identifier(w.group)}
    mysql.sql(*(s.format(**names) for s in SETUP))
    args = parse_dsn(mysql.admin_dsn)
    w.admin_dsn = (f"mysql://{admin_user}:{password}@{args['host']}:{args['port']}/test")
    yield w
    w.cleanup()


def test_life_cycle_with_least_privilege(lp: MyWorld) -> None:
    admin = lp.prefix + "reconciler"
    lp.add_grant(expires=utc(seconds=3))
    run = lp.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results)
    session = lp.connect()
    lp.server.sql(f"ALTER USER {account(lp.login())} WITH MAX_USER_CONNECTIONS 50",
                  f"SET DEFAULT ROLE NONE FOR {account(lp.login())}")
    repaired = lp.run()
    assert not repaired.failed, repaired.targets[0].results
    time.sleep(3.5)
    run = lp.run()
    assert not run.failed, run.targets[0].results
    assert actions(run) == [("revoke", lp.login(), "expired")]
    assert run.targets[0].results[0].sessions_ended == 1
    session.close()
    assert lp.account(lp.login()) is None
    assert lp.account(admin) is not None and not lp.account(admin)["locked"]  # type: ignore[index]


def test_an_account_sharing_the_reconcilers_user_name_is_left_alone(lp: MyWorld) -> None:
    """Connections are matched by user name: killing this one's would kill the reconciler's."""
    twin = account(lp.prefix + "reconciler", "localhost")
    lp.server.sql(f"CREATE USER {twin} IDENTIFIED BY 'x'")
    lp.add_grant()
    run = lp.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results)
    assert actions(run) == [("create", lp.login(), "granted")]
    assert lp.account(lp.prefix + "reconciler", "localhost") is not None
