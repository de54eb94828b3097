"""Issue 11, finding 9: a login that a grant file maps to, made an administrator behind
jitgrant's back (GRANT ALL ON *.*, a password of the attacker's choosing), was left alone on
every later apply and the hijacked password kept working. Such a login is jitgrant's: the next
apply puts it back when the reconciler has the rights (MariaDB/MySQL: CREATE USER, and
SYSTEM_USER on MySQL 8; PostgreSQL: a superuser reconciler)."""

from __future__ import annotations


import psycopg
import pymysql
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.engines.mysql import account
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld, actions


def _my_logs_in(my: MyWorld, password: str) -> bool:
    try:
        my.server.login(my.login(), password).close()
    except pymysql.OperationalError:
        return False
    return True


@pytest.mark.mysql
def test_a_granted_mysql_login_made_an_administrator_is_put_back(my: MyWorld) -> None:
    my.add_grant()
    my.run()
    acct = account(my.login())
    my.server.sql(f"GRANT ALL ON *.* TO {acct} WITH GRANT OPTION",
                  f"SET PASSWORD FOR {acct} = PASSWORD('hijacked')")
    hijacker = my.server.login(my.login(), "hijacked")
    try:
        run = my.run()
        assert actions(run) == [("update", my.login(), "drift")]
        assert not run.failed, [str(p) for p in run.problems]
        assert not _my_logs_in(my, "hijacked")
        assert _my_logs_in(my, my.passwords["alice"])
        found = my.account(my.login())
        assert found is not None and found["access"] == 0 and found["roles"] == my.group
        with pytest.raises(pymysql.MySQLError):  # its administrator's connection ended
            with hijacker.cursor() as cur:
                cur.execute("SELECT 1")
        assert actions(my.run()) == []
    finally:
        hijacker.close()


@pytest.mark.mysql
def test_a_mysql_administrator_no_grant_maps_to_is_still_only_reported(my: MyWorld) -> None:
    """Accounts in the namespace that no grant maps to keep today's warning."""
    name = f"{my.prefix}someadmin"
    my.server.sql(f"CREATE USER {account(name)} IDENTIFIED BY 'x'",
                  f"GRANT ALL ON *.* TO {account(name)}")
    run = my.run()
    assert actions(run) == []
    assert [p.severity for p in run.problems] == ["warning"]
    assert "administers the server" in run.problems[0].message
    assert my.account(name) is not None and my.account(name)["access"] != 0  # type: ignore[index]


def _pg_logs_in(world: World, login: str, password: str) -> bool:
    try:
        psycopg.connect(world.server.login_dsn(login, password)).close()
    except psycopg.OperationalError:
        return False
    return True


def test_a_granted_postgres_login_made_a_superuser_is_put_back(scram_world: World) -> None:
    """Its marker comment removed too: the grant file that maps to it makes it jitgrant's."""
    password = new_password()
    scram_world.add_grant(verifier=scram_sha256_verifier(password))
    scram_world.run()
    login = scram_world.login()
    with scram_world.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} SUPERUSER PASSWORD 'hijacked'").format(
            sql.Identifier(login)))
        c.execute(sql.SQL("COMMENT ON ROLE {} IS NULL").format(sql.Identifier(login)))
    run = scram_world.run()
    assert not run.failed, [str(p) for p in run.problems]
    role = scram_world.role(login)
    assert role is not None and not role["rolsuper"]
    assert not _pg_logs_in(scram_world, login, "hijacked")
    assert _pg_logs_in(scram_world, login, password)
