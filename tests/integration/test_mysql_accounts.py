"""Accounts in a MySQL/MariaDB namespace that jitgrant must not take for its own logins:
administrators named with the prefix, the same user name under other hosts, extra ways to log in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from reconciler.credentials import mysql_native_verifier
from reconciler.engines.mysql import account, identifier, literal
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


def logs_in(my: MyWorld, user: str, password: str) -> bool:
    try:
        my.server.login(user, password).close()
    except pymysql.OperationalError:
        return False
    return True


def alive(session: Any) -> bool:
    try:
        with session.cursor() as cur:
            cur.execute("SELECT 1")
    except pymysql.MySQLError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_same_user_on_another_host_is_a_backdoor_and_goes(my: MyWorld, host: str) -> None:
    """'login'@'127.0.0.1' is more specific than the managed 'login'@'%': a client from there
    matches it first, with a password of someone's choosing. It is revoked and its connections
    end, although they cannot be told from the managed account's (those end too)."""
    my.add_grant()
    my.run()
    login = my.login()
    managed = my.connect()  # from here on, a client from 127.0.0.1 would match the backdoor
    my.server.sql(f"CREATE USER {account(login, host)} IDENTIFIED BY 'backdoor'",
                  f"GRANT {identifier(my.group)} TO {account(login, host)}")
    backdoor = my.server.login(login, "backdoor") if host == "127.0.0.1" else None
    run = my.run()
    assert not run.failed, (run.targets[0].results, run.problems)
    assert actions(run) == [("revoke", f"{login}@{host}", "unknown")]
    [result] = run.targets[0].results
    assert result.sessions_ended == (2 if backdoor else 1)
    assert any("cannot be told apart" in p.message for p in run.problems)
    assert my.account(login, host) is None
    assert backdoor is None or not alive(backdoor)
    assert not alive(managed)
    assert not logs_in(my, login, "backdoor")
    with my.connect() as c, c.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (login + "@%",)
    assert my.account(login) == {"locked": False, "default_role": my.group, "limit": 3,
                                 "access": 0, "roles": my.group}
    assert actions(my.run()) == []


def test_a_role_named_like_a_login_does_not_hide_it(my: MyWorld) -> None:
    """MariaDB keeps roles with host '': a role and the account 'login'@'%' may share a name,
    and neither may stand in for the other in the state."""
    my.add_grant()
    my.run()
    login = my.login()
    my.server.sql(f"CREATE ROLE {identifier(login)}",
                  f"ALTER USER {account(login)} WITH MAX_USER_CONNECTIONS 50")
    run = my.run()
    assert not run.failed, (run.targets[0].results, run.problems)
    assert sorted((a.kind, a.login, a.cause) for a in run.targets[0].plan.actions) == [
        ("revoke", f"{login}@", "unknown"), ("update", login, "drift")]
    assert my.server.sql("SELECT Host FROM mysql.global_priv WHERE User = "
                         f"{literal(login)}") == [("%",)]
    assert my.account(login)["limit"] == 3  # type: ignore[index]
    assert actions(my.run()) == []


def test_connections_spared_only_for_an_account_left_alone(my: MyWorld) -> None:
    """never_touch 'login@localhost' shares the user name: revoking 'login'@'%' must not end
    its connections, and says so."""
    login = my.login()
    my.write_policy(never_touch=[f"{login}@127.0.0.1"])
    my.server.sql(f"CREATE USER {account(login, '127.0.0.1')} IDENTIFIED BY 'kept'",
                  f"CREATE USER {account(login)} IDENTIFIED BY 'gone'")
    kept = my.server.login(login, "kept")
    run = my.run()
    assert actions(run) == [("revoke", login, "removed")]
    assert not any("KILL" in s.sql for s in run.targets[0].statements)
    assert run.targets[0].results[0].sessions_ended == 0
    assert any("are not killed" in p.message for p in run.problems)
    assert alive(kept) and my.account(login) is None
    assert my.account(login, "127.0.0.1") is not None
    kept.close()


@pytest.mark.parametrize("extra", ["OR mysql_native_password USING PASSWORD('second')",
                                   "OR unix_socket"])
def test_a_second_way_in_is_drift_and_goes(my: MyWorld, extra: str) -> None:
    """MariaDB 10.4+: `IDENTIFIED VIA … OR …` adds a second password or another plugin beside
    the grant's verifier. The next apply leaves exactly the one verifier."""
    my.add_grant()
    my.run()
    login, verifier = my.login(), mysql_native_verifier(my.passwords["alice"])
    my.server.sql(f"ALTER USER {account(login)} IDENTIFIED VIA mysql_native_password "
                  f"USING {literal(verifier)} {extra}")
    assert my.server.sql(auth_or(login)) == [(2,)]
    if "second" in extra:
        assert logs_in(my, login, "second")
    run = my.run()
    assert not run.failed, (run.targets[0].results, run.problems)
    [update] = run.targets[0].plan.actions  # type: ignore[union-attr]
    assert (update.kind, update.cause, update.changes.describe()) == ("update", "drift",
                                                                      ["password"])
    assert my.server.sql(auth_or(login)) in ([(1,)], [(None,)])
    assert not logs_in(my, login, "second")
    assert logs_in(my, login, my.passwords["alice"])
    assert actions(my.run()) == []


def auth_or(login: str) -> str:
    return ("SELECT JSON_LENGTH(Priv, '$.auth_or') FROM mysql.global_priv "
            f"WHERE User = {literal(login)} AND Host = '%'")
