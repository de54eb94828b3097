"""MySQL/MariaDB: an access level's account limits (MAX_QUERIES_PER_HOUR, ...) on its logins,
read in the batched account read and drift-repaired."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from reconciler.engines.mysql import account, literal
from tests.helpers import policy
from tests.integration.test_mysql import MyWorld, actions

pytestmark = pytest.mark.mysql


def with_settings(my: MyWorld, settings: dict[str, Any]) -> None:
    data = policy(engine="mysql", dsn_env=my.dsn_env, prefix=my.prefix, groups=(my.group,))
    data["access"]["readonly"]["settings"] = settings
    my.repo.write("policies/main.yaml", data)
    my.repo.commit("settings")


def limits(my: MyWorld) -> dict[str, int]:
    [row] = my.server.sql(
        "SELECT JSON_VALUE(Priv, '$.max_questions'), JSON_VALUE(Priv, '$.max_updates'),"
        " JSON_VALUE(Priv, '$.max_connections'), JSON_VALUE(Priv, '$.max_user_connections')"
        f" FROM mysql.global_priv WHERE User = {literal(my.login())} AND Host = '%'")
    names = ("MAX_QUERIES_PER_HOUR", "MAX_UPDATES_PER_HOUR", "MAX_CONNECTIONS_PER_HOUR",
             "MAX_USER_CONNECTIONS")
    return {n: int(v or 0) for n, v in zip(names, row, strict=True)}


def test_account_limits_are_set_and_drift_repaired(my: MyWorld) -> None:
    with_settings(my, {"MAX_QUERIES_PER_HOUR": 500, "MAX_UPDATES_PER_HOUR": 0})
    my.add_grant()
    run = my.run()
    assert not run.failed, run.problems
    assert limits(my) == {"MAX_QUERIES_PER_HOUR": 500, "MAX_UPDATES_PER_HOUR": 0,
                          "MAX_CONNECTIONS_PER_HOUR": 0, "MAX_USER_CONNECTIONS": 3}
    assert actions(my.run()) == []
    # Out of band: the limit lifted, another added.
    my.server.sql(f"ALTER USER {account(my.login())} WITH MAX_QUERIES_PER_HOUR 0 "
                  "MAX_CONNECTIONS_PER_HOUR 7")
    run = my.run()
    assert not run.failed, run.problems
    [update] = [a for t in run.targets for a in (t.plan.actions if t.plan else ())]
    assert update.cause == "drift"
    assert update.changes.describe() == ["set MAX_QUERIES_PER_HOUR = 500",
                                         "reset MAX_CONNECTIONS_PER_HOUR"]
    assert limits(my)["MAX_QUERIES_PER_HOUR"] == 500
    assert limits(my)["MAX_CONNECTIONS_PER_HOUR"] == 0
    assert actions(my.run()) == []


def test_the_server_enforces_the_limit(my: MyWorld) -> None:
    """MAX_QUERIES_PER_HOUR 3: the fourth statement of the hour is refused by the server."""
    with_settings(my, {"MAX_QUERIES_PER_HOUR": 3})
    my.add_grant()
    assert not my.run().failed
    conn = my.connect()
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as caught:
            for _ in range(10):
                cur.execute("SELECT 1")
        assert caught.value.args[0] == 1226  # ER_USER_LIMIT_REACHED, the server's number
    finally:
        conn.close()


@pytest.mark.parametrize(("settings", "says"), [
    ({"statement_timeout": "5s"}, "PostgreSQL settings"),
    ({"MAX_USER_CONNECTIONS": 5}, "use connection_limit"),
    ({"MAX_QUERIES_PER_HOUR": "1; DROP USER root"}, "whole number"),
    ({"MAX_QUERIES_PER_HOUR": -1}, "whole number"),
])
def test_settings_a_mysql_target_does_not_take_are_refused(my: MyWorld, settings: dict[str, Any],
                                                           says: str) -> None:
    with_settings(my, settings)
    my.add_grant()
    run = my.run()
    assert run.failed
    assert any(says in p.message for p in run.problems), run.problems
    assert my.account(my.login()) is None
