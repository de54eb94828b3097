"""Attack (issue 11, finding 6): an access level whose group role is superuser-equivalent.

A policy author (or a DBA altering a group role later) makes a level whose login could `SET
ROLE` to a superuser. The reconciler reads the catalog and refuses such a grant, fail closed,
naming why, unless the level says `dangerous: true`. Real servers: PostgreSQL 15 and 18,
MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from reconciler.apply import Run
from reconciler.credentials import new_password
from reconciler.engines.mysql import identifier
from tests.conftest import PgServer
from tests.helpers import policy
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld


@pytest.fixture
def world(pg: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(pg, tmp_path / "repo")
    yield w
    w.cleanup()


def set_level(w: World | MyWorld, roles: list[str], dangerous: bool = False,
              engine: str = "postgres") -> None:
    data = policy(engine=engine, dsn_env=w.dsn_env, prefix=w.prefix, groups=tuple(roles))
    if dangerous:
        data["access"]["readonly"]["dangerous"] = True
    w.repo.write("policies/main.yaml", data)
    w.repo.commit("policy")


def pg_sql(w: World, statement: str, *names: str) -> None:
    with w.server.conn() as c:
        c.execute(sql.SQL(statement).format(*map(sql.Identifier, names)))


def refusals(run: Run) -> list[str]:
    return [p.message for p in run.problems if "needs `dangerous: true`" in p.message]


def planned(run: Run) -> list[tuple[str, str, str]]:
    return [(a.kind, a.login, a.cause) for t in run.targets
            for a in (t.plan.actions if t.plan else ())]


@pytest.mark.parametrize(("attribute", "why"), [
    ("SUPERUSER", "is a superuser"), ("CREATEROLE", "is a role with CREATEROLE"),
    ("BYPASSRLS", "is a role with BYPASSRLS"), ("REPLICATION", "is a role with REPLICATION")])
def test_a_group_role_with_power_is_not_granted(world: World, attribute: str, why: str) -> None:
    pg_sql(world, f"ALTER ROLE {{}} WITH {attribute}", world.group)
    world.add_grant()
    run = world.run()
    assert run.failed and planned(run) == []
    assert refusals(run) == [f"group role {world.group} {why} on target db1: access level "
                             "'readonly' needs `dangerous: true` to grant it; grant refused"]
    assert world.role(world.login()) is None


def test_a_member_of_a_superuser_is_not_granted(world: World) -> None:
    """group -> member -> superuser: two memberships away, the login could SET ROLE to it."""
    pg_sql(world, "CREATE ROLE {} NOLOGIN SUPERUSER", world.member)
    pg_sql(world, "GRANT {} TO {}", world.member, world.owner)
    pg_sql(world, "GRANT {} TO {}", world.owner, world.group)
    world.add_grant()
    run = world.run()
    assert run.failed and world.role(world.login()) is None
    assert [f"can become {world.member} through memberships, which is a superuser" in m
            for m in refusals(run)] == [True]


def test_a_group_leading_to_a_server_file_role_is_not_granted(world: World) -> None:
    pg_sql(world, "GRANT pg_write_server_files TO {}", world.group)
    world.add_grant()
    run = world.run()
    assert run.failed and world.role(world.login()) is None
    assert [m.split(" on target")[0] for m in refusals(run)] == [
        f"group role {world.group} can become pg_write_server_files through memberships, "
        "which is a server role that writes files as the server's operating-system user"]


def test_the_reconcilers_own_role_is_not_granted(world: World) -> None:
    """A name validate cannot know: the role the DSN connects as."""
    admin, password = f"{world.prefix[:-1]}adm", new_password()
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(admin), sql.Literal(password)))
    try:
        world.admin_dsn = world.server.login_dsn(admin, password)
        set_level(world, [admin])
        world.add_grant()
        run = world.run()
        assert run.failed and world.role(world.login()) is None
        assert [m.split(" on target")[0] for m in refusals(run)] == [
            f"group role {admin} is the reconciler's own role"]
    finally:
        with world.server.conn() as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(admin)))


def test_dangerous_true_grants_it(world: World) -> None:
    pg_sql(world, "ALTER ROLE {} WITH SUPERUSER", world.group)
    set_level(world, [world.group], dangerous=True)
    world.add_grant()
    run = world.run()
    assert not run.failed, run.problems
    role = world.role(world.login())
    assert role is not None and role["member_of"] == [world.group]


def test_a_login_whose_group_becomes_a_superuser_later_is_revoked(world: World) -> None:
    world.add_grant()
    assert not world.run().failed and world.role(world.login()) is not None
    pg_sql(world, "ALTER ROLE {} WITH SUPERUSER", world.group)
    run = world.run()
    assert run.failed and planned(run) == [("revoke", world.login(), "invalid")]
    assert world.role(world.login()) is None


# -- MariaDB: a role holding global administrative privileges -------------------------------


def my_grant_all(my: MyWorld, role: str) -> Any:
    return my.server.sql(f"GRANT ALL PRIVILEGES ON *.* TO {identifier(role)}")


@pytest.mark.mysql
def test_a_mysql_role_with_all_on_everything_is_not_granted(my: MyWorld) -> None:
    my_grant_all(my, my.group)
    my.add_grant()
    run = my.run()
    assert run.failed and planned(run) == []
    assert refusals(run) == [
        f"group role {my.group} is an administrator (SUPER, CREATE USER or GRANT OPTION on "
        "*.*) on target db1: access level 'readonly' needs `dangerous: true` to grant it; "
        "grant refused"]
    assert my.account(my.login()) is None


@pytest.mark.mysql
def test_a_mysql_role_granted_an_administrator_role_is_not_granted(my: MyWorld) -> None:
    my_grant_all(my, my.other)
    my.server.sql(f"GRANT {identifier(my.other)} TO {identifier(my.group)}")
    my.add_grant()
    run = my.run()
    assert run.failed and my.account(my.login()) is None
    assert [f"leads to role {my.other}, which is an administrator" in m
            for m in refusals(run)] == [True]


@pytest.mark.mysql
def test_a_mysql_administrator_role_with_dangerous_true_is_granted(my: MyWorld) -> None:
    my_grant_all(my, my.group)
    set_level(my, [my.group], dangerous=True, engine="mysql")
    my.add_grant()
    run = my.run()
    assert not run.failed, run.problems
    found = my.account(my.login())
    assert found is not None and found["roles"] == my.group
