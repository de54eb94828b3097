"""A group role with GRANT OPTION lets a temporary login hand out access that outlives it:
PostgreSQL records the group as grantor, MariaDB keeps the grants after DROP USER. jitgrant
cannot take such grants back, so it must say so: plan warns about the group role, and the
revocation of a MariaDB login that granted something names the grants it leaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from reconciler.engines.mysql import account, identifier
from tests.conftest import MysqlServer
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld


def _warnings(run) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.message for p in run.problems if p.severity == "warning"]


def test_plan_warns_when_a_group_role_holds_grant_option_on_postgres(world: World) -> None:
    table = sql.Identifier(f"{world.prefix}orders")
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE TABLE public.{} (id int)").format(table))
        c.execute(sql.SQL("GRANT SELECT ON public.{} TO {} WITH GRANT OPTION").format(
            table, sql.Identifier(world.group)))
    try:
        world.add_grant()
        [warning] = [w for w in _warnings(world.run(execute=False)) if "GRANT OPTION" in w]
        assert warning.startswith(f"target db1: group role {world.group} holds GRANT OPTION "
                                  f"on table public.{world.prefix}orders:")
    finally:
        with world.server.conn() as c:
            c.execute(sql.SQL("DROP TABLE public.{}").format(table))


@pytest.fixture
def my(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.server.sql(f"DROP USER IF EXISTS {account(w.other + '_u', '%')}")
    w.cleanup()


@pytest.mark.mysql
def test_mariadb_grants_a_login_made_with_its_roles_grant_option_are_reported(
        my: MyWorld) -> None:
    table = f"test.{identifier(my.table)}"
    friend = account(my.other + "_u", "%")
    my.server.sql(f"GRANT SELECT ON {table} TO {identifier(my.group)} WITH GRANT OPTION",
                  f"CREATE USER {friend}")
    my.add_grant()
    created = my.run()
    assert any("GRANT OPTION" in w and my.group in w for w in _warnings(created))
    with my.connect() as c, c.cursor() as cur:
        cur.execute(f"GRANT SELECT ON {table} TO {friend}")
    my.repo.remove("grants/db1/alice.yaml")
    my.repo.commit("end alice's access")
    run = my.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results, run.problems)
    [left] = [w for w in _warnings(run) if w.startswith(f"target db1: login {my.login()}")]
    assert f"Select on table test.{my.table} to {my.other}_u@%" in left
    assert "leaves those grants in place" in left
    # Still there after DROP USER: reported, not silently kept.
    rows = my.server.sql("SELECT Grantor FROM mysql.tables_priv WHERE User = "
                         f"'{my.other}_u'")
    assert rows and str(rows[0][0]).startswith(my.login() + "@")
