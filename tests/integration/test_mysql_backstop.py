"""expiry_backstop: event — the server locks the account at expiry even if jitgrant never runs.
Runs on a throwaway MariaDB with the event scheduler on, so the machine's server is untouched."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from reconciler.engines.mysql import EVENT_PREFIX
from tests.conftest import MysqlServer
from tests.helpers import utc
from tests.integration.test_mysql import MyWorld, actions
from tests.mysql_server import ThrowawayMariadb

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def scheduler_server() -> Iterator[MysqlServer]:
    server = ThrowawayMariadb()
    if not server.available:
        if os.environ.get("JITGRANT_REQUIRE_MYSQL"):
            pytest.fail("JITGRANT_REQUIRE_MYSQL is set but mariadbd is not installed")
        pytest.skip("mariadbd is not installed")
    try:
        dsn = server.start()
        MysqlServer("bootstrap", dsn).sql("CREATE DATABASE IF NOT EXISTS test")
        yield MysqlServer("mariadb-events", dsn.rsplit("/", 1)[0] + "/test")
    finally:
        server.stop()


@pytest.fixture
def ev(scheduler_server: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(scheduler_server, tmp_path / "repo", expiry_backstop="event")
    yield w
    w.cleanup()


def events(world: MyWorld) -> list[str]:
    rows = world.server.sql("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE "
                            f"EVENT_NAME LIKE '{EVENT_PREFIX}{world.prefix}%'")
    return [r[0] for r in rows]


def test_the_event_locks_the_account_at_expiry_without_apply(ev: MyWorld) -> None:
    ev.add_grant(expires=utc(seconds=4))
    run = ev.run()
    assert not run.failed, (run.targets[0].results, run.problems)
    assert events(ev) == [EVENT_PREFIX + ev.login()]
    ev.connect().close()
    time.sleep(5.5)
    with pytest.raises(pymysql.OperationalError):
        ev.connect()
    assert ev.account(ev.login())["locked"]  # type: ignore[index]
    assert events(ev) == []  # one-shot: gone once it fired
    assert actions(ev.run()) == [("revoke", ev.login(), "expired")]


def test_extension_moves_the_event(ev: MyWorld) -> None:
    ev.add_grant(expires=utc(hours=1))
    ev.run()
    ev.add_grant(expires=utc(hours=2))
    run = ev.run()
    assert [(a.cause, a.changes.describe()) for a in run.targets[0].plan.actions] == [
        ("granted", ["expiry event"])]  # type: ignore[union-attr]
    assert actions(ev.run()) == []


def test_events_no_longer_needed_are_removed(ev: MyWorld) -> None:
    ev.add_grant(expires=utc(hours=1))
    ev.run()
    assert events(ev)
    ev.write_policy(expiry_backstop="none")
    run = ev.run()
    assert not run.failed and events(ev) == []
    ev.write_policy(expiry_backstop="event")
    ev.run()
    assert events(ev)
    ev.repo.remove("grants/db1/alice.yaml")
    ev.repo.commit("revoke early")
    assert actions(ev.run()) == [("revoke", ev.login(), "removed")]
    assert events(ev) == []


def test_scheduler_off_is_a_warning_not_a_failure(mysql: MysqlServer, tmp_path: Path) -> None:
    state = mysql.sql("SELECT @@event_scheduler")[0][0]
    if str(state).upper() == "ON":
        pytest.skip("this server's event scheduler is on")
    w = MyWorld(mysql, tmp_path / "repo", expiry_backstop="event")
    try:
        w.add_grant()
        run = w.run()
        assert not run.failed
        assert any("event scheduler" in p.message and p.severity == "warning"
                   for p in run.problems)
    finally:
        w.cleanup()
