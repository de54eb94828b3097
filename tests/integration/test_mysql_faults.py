"""MySQL DDL is not transactional: a run stopped after any statement must leave no usable
access behind, and the next run must converge. Each position is tried for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pymysql
import pytest

from reconciler.apply import reconcile
from reconciler.engines import ENGINES
from reconciler.engines.mysql import MysqlSession
from reconciler.snapshot import read_snapshot
from tests.conftest import MysqlServer
from tests.helpers import utc
from tests.integration.test_mysql import MyWorld, actions

pytestmark = pytest.mark.mysql


@pytest.fixture
def my(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(mysql, tmp_path / "repo")
    yield w
    w.cleanup()


def _statements(world: MyWorld) -> list[str]:
    """The statements the next apply would run, in order."""
    run = world.run(execute=False)
    return [s.sql for s in run.targets[0].statements]


def _run_first(world: MyWorld, count: int) -> None:
    """Run the first `count` statements as apply would, then stop: a kill at that point."""
    target = world.run(execute=False).targets[0].target
    session = ENGINES["mysql"].connect(target, world.admin_dsn)
    assert isinstance(session, MysqlSession)
    try:
        with session.conn.cursor() as cur:
            for sql in _statements(world)[:count]:
                cur.execute(sql)
    finally:
        session.close()


def _can_log_in(world: MyWorld) -> bool:
    try:
        world.connect().close()
    except pymysql.MySQLError:
        return False
    return True


def test_stopped_after_each_statement_of_a_creation(my: MyWorld) -> None:
    my.add_grant()
    total = len(_statements(my))
    assert total >= 4
    for count in range(total):
        _run_first(my, count)
        assert not _can_log_in(my), f"usable access after {count} of {total} statements"
        run = my.run()
        assert not run.failed, (count, run.targets[0].results)
        assert _can_log_in(my)
        assert actions(my.run()) == []
        my.cleanup_logins()


def test_stopped_after_each_statement_of_a_revocation(my: MyWorld) -> None:
    """lock, kill (an open session), drop: stopped after each, nothing usable is left."""
    sessions = []
    total = 0
    for count in range(1, 4):
        my.add_grant(expires=utc(seconds=2))
        my.run()
        sessions.append(my.connect())  # so the revocation has a connection to kill
        time.sleep(2.5)
        total = len(_statements(my))
        assert total == 3
        _run_first(my, count)
        assert not _can_log_in(my), f"usable access after {count} of {total} statements"
        run = my.run()
        assert not run.failed and my.account(my.login()) is None
        if count < 3:
            assert actions(run) == [("revoke", my.login(), "expired")]
    for session in sessions:
        session.close()


def test_killed_process_while_blocked_converges(my: MyWorld) -> None:
    my.add_grant()
    env = {**os.environ, **my.env}
    with my.server.conn() as holder, holder.cursor() as cur:
        cur.execute("FLUSH TABLES WITH READ LOCK")  # every account change now waits
        proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "apply", "--no-commit",
                                 "--repo", str(my.repo.root)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE"
                        " INFO LIKE 'CREATE USER%%' AND STATE LIKE '%%lock%%'")
            row = cur.fetchone()
            if row and row[0]:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        cur.execute("UNLOCK TABLES")
    time.sleep(0.5)  # the server finishes the statement it was waiting to run
    assert not _can_log_in(my)
    assert not my.run().failed
    assert _can_log_in(my)


def test_run_with_grant_expired_between_plan_and_apply_is_repaired(my: MyWorld) -> None:
    """A plan made at one instant and applied later never grants beyond the expiry."""
    my.add_grant(expires=utc(seconds=2))
    now = datetime.now(timezone.utc)
    snapshot = read_snapshot(my.repo.root, "HEAD", now)
    reconcile(snapshot, now, execute=True, env=my.env)
    time.sleep(2.5)
    assert actions(my.run()) == [("revoke", my.login(), "expired")]
