"""The MySQL engine against a real MariaDB: the same guarantees as PostgreSQL."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pymysql
import pytest

from reconciler.apply import Run, reconcile
from reconciler.credentials import mysql_native_verifier, new_password
from reconciler.engines.mysql import account, identifier, lock_name, literal
from reconciler.snapshot import read_snapshot
from tests.conftest import MysqlServer
from tests.helpers import AccessRepo, grant, policy, utc

pytestmark = pytest.mark.mysql


class MyWorld:
    """One mysql target on the server, with a namespace and a group role of its own."""

    def __init__(self, server: MysqlServer, root: Path, **target_extra: Any) -> None:
        tag = secrets.token_hex(3)
        self.server = server
        self.prefix = f"m{tag}_"
        self.group = f"g{tag}_app"
        self.other = f"g{tag}_other"
        self.table = f"jg_{tag}"
        self.dsn_env = f"JG_MY_{tag.upper()}"
        self.admin_dsn = server.admin_dsn
        self.repo = AccessRepo(root)
        self.passwords: dict[str, str] = {}
        server.sql(f"CREATE ROLE {identifier(self.group)}",
                   f"CREATE ROLE {identifier(self.other)}",
                   f"CREATE TABLE test.{identifier(self.table)} (id int)",
                   f"INSERT INTO test.{identifier(self.table)} VALUES (1), (2)",
                   f"GRANT SELECT ON test.{identifier(self.table)} TO {identifier(self.group)}")
        self.write_policy(**target_extra)

    @property
    def env(self) -> dict[str, str]:
        return {self.dsn_env: self.admin_dsn}

    def write_policy(self, **target_extra: Any) -> None:
        self.repo.write("policies/main.yaml", policy(engine="mysql", dsn_env=self.dsn_env,
                                                     prefix=self.prefix, groups=(self.group,),
                                                     **target_extra))
        self.repo.commit("policy")

    def login(self, grantee: str = "alice", access: str = "readonly") -> str:
        return f"{self.prefix}{grantee}_{access}"

    def add_grant(self, name: str = "alice", grantee: str = "alice", **kwargs: Any) -> str:
        password = self.passwords.setdefault(grantee, new_password())
        rel = f"grants/db1/{name}.yaml"
        self.repo.write(rel, grant(grantee=grantee, verifier=mysql_native_verifier(password),
                                   **kwargs))
        self.repo.commit(f"grant {name}")
        return rel

    def run(self, execute: bool = True, env: dict[str, str] | None = None) -> Run:
        now = datetime.now(timezone.utc)
        snapshot = read_snapshot(self.repo.root, "HEAD", now)
        return reconcile(snapshot, now, execute=execute, env=env or self.env)

    def connect(self, grantee: str = "alice", access: str = "readonly") -> Any:
        return self.server.login(self.login(grantee, access), self.passwords[grantee], "test")

    def account(self, user: str, host: str = "%") -> dict[str, Any] | None:
        rows = self.server.sql(
            "SELECT JSON_VALUE(Priv, '$.account_locked'), JSON_VALUE(Priv, '$.default_role'),"
            " JSON_VALUE(Priv, '$.max_user_connections'), JSON_VALUE(Priv, '$.access'),"
            " (SELECT GROUP_CONCAT(Role ORDER BY Role) FROM mysql.roles_mapping r"
            "   WHERE r.User = g.User AND r.Host = g.Host)"
            f" FROM mysql.global_priv g WHERE User = {literal(user)} AND Host = {literal(host)}")
        if not rows:
            return None
        locked, default, limit, access, roles = rows[0]
        return {"locked": str(locked) in ("true", "1"), "default_role": default,
                "limit": int(limit or 0), "access": int(access or 0), "roles": roles}

    def cleanup_logins(self) -> None:
        rows = self.server.sql("SELECT User, Host FROM mysql.global_priv WHERE "
                               f"LEFT(User, {len(self.prefix)}) = {literal(self.prefix)}")
        self.server.sql("SELECT 1", *(f"DROP USER IF EXISTS {account(u, h)}" for u, h in rows))

    def cleanup(self) -> None:
        rows = self.server.sql("SELECT User, Host FROM mysql.global_priv WHERE "
                               f"LEFT(User, {len(self.prefix)}) = {literal(self.prefix)}")
        statements = [f"DROP USER IF EXISTS {account(u, h)}" for u, h in rows]
        statements += [f"DROP ROLE IF EXISTS {identifier(r)}" for r in (self.group, self.other)]
        statements.append(f"DROP TABLE IF EXISTS test.{identifier(self.table)}")
        events = self.server.sql("SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS"
                                 f" WHERE EVENT_NAME LIKE 'jitgrant_expire_{self.prefix}%'")
        statements += [f"DROP EVENT IF EXISTS {identifier(s)}.{identifier(n)}"
                       for s, n in events]
        self.server.sql(*statements)


def actions(run: Run) -> list[tuple[str, str, str]]:
    return [(a.kind, a.login, a.cause) for t in run.targets
            for a in (t.plan.actions if t.plan else ())]


def test_grant_becomes_an_account_with_the_roles_active_by_default(my: MyWorld) -> None:
    my.add_grant()
    run = my.run()
    assert not run.failed, (run.targets[0].error, run.targets[0].results, run.problems)
    assert actions(run) == [("create", my.login(), "granted")]
    with my.connect() as c, c.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE(), CURRENT_USER()")
        assert cur.fetchone() == (my.group, my.login() + "@%")
        cur.execute(f"SELECT count(*) FROM test.{identifier(my.table)}")  # no SET ROLE needed
        assert cur.fetchone() == (2,)
    state = my.account(my.login())
    assert state == {"locked": False, "default_role": my.group, "limit": 3, "access": 0,
                     "roles": my.group}
    assert actions(my.run()) == []


def test_wrong_password_is_refused(my: MyWorld) -> None:
    my.add_grant()
    my.run()
    with pytest.raises(pymysql.OperationalError):
        my.server.login(my.login(), "not-" + my.passwords["alice"])


def test_expiry_locks_kills_and_drops(my: MyWorld) -> None:
    my.add_grant(expires=utc(seconds=3))
    my.run()
    session = my.connect()
    time.sleep(3.5)
    run = my.run()
    assert not run.failed, run.targets[0].results
    assert actions(run) == [("revoke", my.login(), "expired")]
    assert run.targets[0].results[0].sessions_ended == 1
    with pytest.raises(pymysql.MySQLError):
        with session.cursor() as cur:
            cur.execute("SELECT 1")
    assert my.account(my.login()) is None


def test_drift_is_put_back(my: MyWorld) -> None:
    my.add_grant()
    my.run()
    acct = account(my.login())
    my.server.sql(f"ALTER USER {acct} IDENTIFIED BY 'changed'",
                  f"GRANT {identifier(my.other)} TO {acct}",
                  f"SET DEFAULT ROLE NONE FOR {acct}",
                  f"GRANT SELECT ON *.* TO {acct}",
                  f"GRANT INSERT ON test.* TO {acct}",
                  f"ALTER USER {acct} WITH MAX_USER_CONNECTIONS 50")
    run = my.run()
    assert not run.failed, run.targets[0].results
    [update] = [a for t in run.targets for a in t.plan.actions]  # type: ignore[union-attr]
    assert update.cause == "drift"
    assert {"password", "connection limit", "default roles", "direct privileges",
            f"revoke {my.other}"} <= set(update.changes.describe())
    assert my.account(my.login()) == {"locked": False, "default_role": my.group, "limit": 3,
                                      "access": 0, "roles": my.group}
    assert my.server.sql(f"SELECT count(*) FROM mysql.db WHERE User = {literal(my.login())}") \
        == [(0,)]
    with my.connect() as c, c.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (my.group,)
    assert actions(my.run()) == []


def test_unlocked_but_expired_account_is_revoked(my: MyWorld) -> None:
    my.add_grant(expires=utc(seconds=2))
    my.run()
    time.sleep(2.5)
    my.server.sql(f"ALTER USER {account(my.login())} ACCOUNT UNLOCK")
    assert actions(my.run()) == [("revoke", my.login(), "expired")]
    assert my.account(my.login()) is None


def test_hand_made_accounts_in_the_namespace_are_revoked(my: MyWorld) -> None:
    stray, local = my.prefix + "mallory", my.prefix + "alice_readonly"
    my.server.sql(f"CREATE USER {account(stray)} IDENTIFIED BY 'x'",
                  f"CREATE USER {account(local, 'localhost')} IDENTIFIED BY 'x'",
                  f"CREATE ROLE {identifier(my.prefix + 'role')}")
    run = my.run()
    assert sorted(actions(run)) == [
        ("revoke", local + "@localhost", "unknown"),
        ("revoke", stray, "unknown"),
        ("revoke", my.prefix + "role", "unknown"),
    ]
    assert not run.failed, run.targets[0].results
    assert my.account(stray) is None and my.account(local, "localhost") is None


def test_outside_admin_and_never_touch_survive(my: MyWorld) -> None:
    outsider, kept = "out_" + my.prefix, my.prefix + "keep"
    my.write_policy(never_touch=[kept])
    my.server.sql(f"CREATE USER {account(outsider)} IDENTIFIED BY 'x'",
                  f"CREATE USER {account(kept)} IDENTIFIED BY 'x' WITH MAX_USER_CONNECTIONS 7")
    try:
        before = (my.account(outsider), my.account(kept), my.account("root", "127.0.0.1"),
                  my.account("root", "localhost"))
        my.add_grant(expires=utc(seconds=2))
        my.run()
        time.sleep(2.5)
        my.run()
        my.run(execute=False)
        after = (my.account(outsider), my.account(kept), my.account("root", "127.0.0.1"),
                 my.account("root", "localhost"))
        assert after == before
    finally:
        my.server.sql(f"DROP USER IF EXISTS {account(outsider)}")


def test_held_lock_is_reported(my: MyWorld) -> None:
    my.add_grant()
    target = my.run(execute=False).targets[0].target
    with my.server.conn() as holder, holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", [lock_name(target)])
        run = my.run()
        assert run.failed and "holds the lock" in (run.targets[0].error or "")
    assert not my.run().failed


def test_hostile_role_names_and_values_keep_their_meaning(my: MyWorld) -> None:
    hostile = my.group + "'`\\\"; DROP USER root; -- %_"
    my.server.sql(f"CREATE ROLE {identifier(hostile)}",
                  f"GRANT SELECT ON test.{identifier(my.table)} TO {identifier(hostile)}")
    try:
        my.repo.write("policies/main.yaml", policy(engine="mysql", dsn_env=my.dsn_env,
                                                   prefix=my.prefix, groups=(hostile,)))
        my.repo.commit("hostile role")
        my.add_grant(reason="'); DROP USER root; -- `☃` \\ %")
        run = my.run()
        assert not run.failed, (run.targets[0].results, run.problems)
        with my.connect() as c, c.cursor() as cur:
            cur.execute("SELECT CURRENT_ROLE()")
            assert cur.fetchone() == (hostile,)
        assert actions(my.run()) == []
    finally:
        my.cleanup()
        my.server.sql(f"DROP ROLE IF EXISTS {identifier(hostile)}")


@pytest.mark.parametrize("value", ["plain", "it's", "back\\slash", "\\'", "'\\", "`tick`",
                                   "%_wild_%", "nul\0byte", "new\nline", "☃ unicode",
                                   "\\\\'; DROP TABLE x; --"])
def test_literals_and_identifiers_round_trip(mysql: MysqlServer, value: str) -> None:
    assert mysql.sql(f"SELECT {literal(value)}") == [(value,)]
    if "\0" not in value:
        with mysql.conn() as c, c.cursor() as cur:
            cur.execute(f"SELECT 1 AS {identifier(value)}")
            assert cur.description[0][0] == value


def test_admin_option_on_a_role_is_drift(my: MyWorld) -> None:
    my.add_grant()
    my.run()
    my.server.sql(f"GRANT {identifier(my.group)} TO {account(my.login())} WITH ADMIN OPTION")
    run = my.run()
    assert not run.failed, run.targets[0].results
    assert my.server.sql("SELECT Admin_option FROM mysql.roles_mapping WHERE "
                         f"User = {literal(my.login())}") == [("N",)]
    assert actions(my.run()) == []
