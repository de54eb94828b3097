"""MariaDB's server_audit plugin, loaded in a throwaway mariadbd: a login whose access level
says `server_audit: true` is kept in server_audit_incl_users, so its statements are in the
audit log file while another user's are not; entries outside the namespace are never dropped;
a revoked login's name leaves the list; a name taken out by hand is put back (drift)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engines.mysql import account, literal
from tests.conftest import MysqlServer
from tests.helpers import policy, utc
from tests.integration.test_mysql import MyWorld, actions
from tests.mysql_server import ThrowawayMariadb

pytestmark = pytest.mark.mysql
PLUGIN = Path("/usr/lib/mysql/plugin/server_audit.so")


@pytest.fixture(scope="module")
def audit_server() -> Iterator[tuple[MysqlServer, Path]]:
    server = ThrowawayMariadb("--plugin-load-add=server_audit", "--server-audit-logging=ON",
                              "--server-audit-events=CONNECT,QUERY")
    if not server.available:
        if os.environ.get("JITGRANT_REQUIRE_MYSQL"):
            pytest.fail("JITGRANT_REQUIRE_MYSQL is set but mariadbd is not installed")
        pytest.skip("mariadbd is not installed")
    if not PLUGIN.exists():
        pytest.skip(f"{PLUGIN} is not there (Debian's mariadb-server ships it)")
    log = server.root / "audit.log"
    server.options += (f"--server-audit-file-path={log}",)
    try:
        dsn = server.start()
        yield MysqlServer("mariadb-audit", dsn.rsplit("/", 1)[0] + "/test"), log
    finally:
        server.stop()


@pytest.fixture
def aud(audit_server: tuple[MysqlServer, Path], tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(audit_server[0], tmp_path / "repo")
    w.server.sql("SET GLOBAL server_audit_incl_users = 'dba_by_hand, someone'")
    yield w
    w.cleanup()


def with_audit(world: MyWorld, settings: dict[str, Any]) -> None:
    data = policy(engine="mysql", dsn_env=world.dsn_env, prefix=world.prefix,
                  groups=(world.group,))
    data["access"]["readonly"]["settings"] = settings
    world.repo.write("policies/main.yaml", data)
    world.repo.commit("settings")


def incl_users(world: MyWorld) -> list[str]:
    [(value,)] = world.server.sql("SELECT @@GLOBAL.server_audit_incl_users")
    return [u.strip() for u in str(value or "").split(",") if u.strip()]


def query(world: MyWorld, user: str, password: str, text: str) -> None:
    conn = world.server.login(user, password)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {literal(text)}")
    finally:
        conn.close()


def logged(log: Path, text: str) -> bool:
    for _ in range(50):  # the plugin writes the file as statements run; give it a moment
        if log.exists() and text in log.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def test_a_managed_login_is_audited_and_another_user_is_not(
        aud: MyWorld, audit_server: tuple[MysqlServer, Path]) -> None:
    log = audit_server[1]
    with_audit(aud, {"server_audit": True, "MAX_QUERIES_PER_HOUR": 1000})
    aud.add_grant()
    run = aud.run()
    assert not run.failed, run.problems
    assert incl_users(aud) == ["dba_by_hand", "someone", aud.login()]
    assert actions(aud.run()) == []
    other = f"{aud.prefix.rstrip('_')}x_other"  # outside the namespace
    aud.server.sql(f"CREATE USER {account(other)} IDENTIFIED BY 'pw-other'")
    mark = secrets.token_hex(4)
    try:
        query(aud, aud.login(), aud.passwords["alice"], f"audited-{mark}")
        query(aud, other, "pw-other", f"not-audited-{mark}")
    finally:
        aud.server.sql(f"DROP USER {account(other)}")
    assert logged(log, f"audited-{mark}")
    assert f"not-audited-{mark}" not in log.read_text(errors="replace")


def test_drift_and_revocation_keep_other_entries(aud: MyWorld) -> None:
    with_audit(aud, {"server_audit": True})
    aud.add_grant(expires=utc(seconds=3))
    assert not aud.run().failed
    # Taken out of the list by hand: drift, put back; the others stay.
    aud.server.sql("SET GLOBAL server_audit_incl_users = 'dba_by_hand,someone'")
    [(kind, login, cause)] = actions(aud.run())
    assert (kind, login, cause) == ("update", aud.login(), "drift")
    assert incl_users(aud) == ["dba_by_hand", "someone", aud.login()]
    time.sleep(3.5)  # the grant expires: revoked, and its name leaves the list
    [(kind, login, cause)] = actions(aud.run())
    assert (kind, cause) == ("revoke", "expired")
    assert incl_users(aud) == ["dba_by_hand", "someone"]


def test_a_level_no_longer_audited_takes_its_login_off_the_list(aud: MyWorld) -> None:
    with_audit(aud, {"server_audit": True})
    aud.add_grant()
    assert not aud.run().failed
    with_audit(aud, {"server_audit": False})
    run = aud.run()
    assert not run.failed, run.problems
    assert incl_users(aud) == ["dba_by_hand", "someone"]
    assert actions(aud.run()) == []


def test_an_empty_list_is_left_empty(aud: MyWorld) -> None:
    """Empty, the plugin logs every user, ours among them: one name there would stop logging
    all the others."""
    aud.server.sql("SET GLOBAL server_audit_incl_users = ''")
    with_audit(aud, {"server_audit": True})
    aud.add_grant()
    assert not aud.run().failed
    assert incl_users(aud) == []
    assert actions(aud.run()) == []


def test_logging_off_refuses_the_level(aud: MyWorld) -> None:
    aud.server.sql("SET GLOBAL server_audit_logging = OFF")
    try:
        with_audit(aud, {"server_audit": True})
        aud.add_grant()
        run = aud.run()
        assert run.failed
        assert any("server_audit_logging is OFF" in p.message for p in run.problems)
        assert aud.account(aud.login()) is None
    finally:
        aud.server.sql("SET GLOBAL server_audit_logging = ON")


def test_without_the_plugin_the_level_is_refused(my: MyWorld) -> None:
    """The machine's MariaDB does not load server_audit: `server_audit: true` grants nothing
    there, at the setting's line."""
    if my.server.sql("SELECT 1 FROM information_schema.GLOBAL_VARIABLES "
                     "WHERE VARIABLE_NAME = 'SERVER_AUDIT_LOGGING'"):
        pytest.skip("server_audit is loaded on the machine's MariaDB")
    with_audit(my, {"server_audit": True})
    my.add_grant()
    run = my.run()
    assert run.failed
    assert any("server_audit plugin is not loaded" in p.message
               and p.path == "policies/main.yaml" and p.line > 1 for p in run.problems)
    assert my.account(my.login()) is None
