"""`jitgrant doctor` on MariaDB: the least-privilege account of docs/least-privilege.md passes;
each privilege a revocation's steps need, taken away, is named with the statement that gives it
back; and doctor changes nothing, holding no lock once it is done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.credentials import new_password
from reconciler.engines.mysql import account, identifier, literal, lock_name, parse_dsn
from reconciler.model import Target
from tests.conftest import MysqlServer
from tests.integration.test_mysql import MyWorld
from tests.integration.test_mysql_least_privilege import SETUP

pytestmark = pytest.mark.mysql


class LpWorld(MyWorld):
    admin_user: str
    password: str


@pytest.fixture
def lp(mysql: MysqlServer, tmp_path: Path) -> Iterator[LpWorld]:
    """The docs' MariaDB account, as tests/integration/test_mysql_least_privilege.py makes it."""
    if "mariadb" not in str(mysql.sql("SELECT VERSION()")[0][0]).lower():
        pytest.skip("these are MariaDB's statements")
    w = LpWorld(mysql, tmp_path / "repo")
    w.admin_user, w.password = f"{w.prefix}reconciler", new_password()
    names = {"admin": account(w.admin_user), "password": literal(w.password),
             "group": identifier(w.group)}
    mysql.sql(*(s.format(**names) for s in SETUP))
    args = parse_dsn(mysql.admin_dsn)
    w.admin_dsn = f"mysql://{w.admin_user}:{w.password}@{args['host']}:{args['port']}/test"
    yield w
    w.cleanup()


def doctor(w: LpWorld) -> tuple[int, list[tuple[str, str, str | None]]]:
    """doctor --format json: (exit code, the warnings and errors as (severity, check, fix));
    the account's password never shows."""
    result = CliRunner().invoke(main, ["doctor", "--repo", str(w.repo.root), "--format",
                                       "json"], env=w.env, catch_exceptions=False)
    assert w.password not in result.stdout + result.stderr
    checks: list[dict[str, Any]] = json.loads(result.stdout)["checks"]
    return result.exit_code, [(c["severity"], c["check"], c["fix"]) for c in checks
                              if c["severity"] in ("warning", "error")]


def test_the_documented_account_passes(lp: LpWorld) -> None:
    assert doctor(lp) == (0, [])


@pytest.mark.parametrize(("revoke", "check", "grant"), [
    ("REVOKE CONNECTION ADMIN ON *.* FROM {admin}", "end sessions: kill them",
     "GRANT CONNECTION ADMIN ON *.* TO {admin}"),
    ("REVOKE PROCESS ON *.* FROM {admin}", "end sessions: see other accounts' connections",
     "GRANT PROCESS ON *.* TO {admin}"),
    ("REVOKE CREATE USER ON *.* FROM {admin}", "create, lock and drop accounts",
     "GRANT CREATE USER ON *.* TO {admin}"),
    ("REVOKE SELECT ON mysql.* FROM {admin}", "read the accounts",
     "GRANT SELECT ON mysql.* TO {admin}"),
])
def test_each_step_of_a_revocation_names_its_privilege(lp: LpWorld, revoke: str, check: str,
                                                      grant: str) -> None:
    admin = account(lp.admin_user)
    lp.server.sql(revoke.format(admin=admin))
    assert doctor(lp) == (1, [("error", check, grant.format(admin=admin))])


def test_revoking_a_group_role_needs_admin_option(lp: LpWorld) -> None:
    admin = account(lp.admin_user)
    lp.server.sql(f"REVOKE ADMIN OPTION FOR {identifier(lp.group)} FROM {admin}")
    assert doctor(lp) == (1, [("error", f"group role {lp.group}",
                               f"GRANT {identifier(lp.group)} TO {admin} WITH ADMIN OPTION")])


def test_default_roles_need_update_on_mysql(lp: LpWorld) -> None:
    """Only creating a login needs it: a warning."""
    admin = account(lp.admin_user)
    lp.server.sql(f"REVOKE UPDATE ON mysql.* FROM {admin}")
    assert doctor(lp) == (2, [("warning", "set default roles",
                               f"GRANT UPDATE ON mysql.* TO {admin}")])


def test_the_backstop_event_needs_event_and_the_scheduler(lp: LpWorld) -> None:
    """DROP EVENT is part of a revocation once backstop events exist: EVENT missing is an
    error. The scheduler is left as the server has it (a shared server): off, a warning."""
    scheduler_on = str(lp.server.sql("SELECT @@event_scheduler")[0][0]).upper() in ("ON", "1")
    lp.write_policy(expiry_backstop="event")
    code, found = doctor(lp)
    assert found == ([] if scheduler_on else
                     [("warning", "expiry backstop", "SET GLOBAL event_scheduler = ON (and "
                       "event_scheduler=ON in the server's configuration)")])
    admin = account(lp.admin_user)
    # Some privilege in the DSN's database remains, or the account could not even connect.
    lp.server.sql(f"GRANT SELECT ON test.{identifier(lp.table)} TO {admin}",
                  f"REVOKE EVENT ON test.* FROM {admin}")
    code, found = doctor(lp)
    assert code == 1
    assert ("error", "expiry backstop", f"GRANT EVENT ON `test`.* TO {admin}") in found


def _catalog(w: LpWorld) -> list[Any]:
    """This world's accounts, roles, grants and events (the server is shared)."""
    mine = f"(LEFT(User, {len(w.prefix)}) = {literal(w.prefix)} OR User IN " \
           f"({literal(w.group)}, {literal(w.other)}))"
    return [w.server.sql(f"SELECT User, Host, Priv FROM mysql.global_priv WHERE {mine} "
                         "ORDER BY 1, 2"),
            w.server.sql(f"SELECT * FROM mysql.roles_mapping WHERE {mine} ORDER BY 1, 2, 3"),
            w.server.sql(f"SELECT * FROM mysql.db WHERE {mine} ORDER BY 1, 2, 3"),
            w.server.sql(f"SELECT * FROM mysql.tables_priv WHERE {mine} ORDER BY 1, 2, 3"),
            w.server.sql("SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS "
                         f"WHERE LEFT(EVENT_NAME, 16) = 'jitgrant_expire_' AND "
                         f"EVENT_NAME LIKE {literal('%' + w.prefix + '%')} ORDER BY 1, 2")]


def test_doctor_changes_nothing_and_leaves_the_lock_free(lp: LpWorld) -> None:
    """Hostile: accounts, roles, grants and events the same before and after, also when
    problems are found; the target's lock is free afterwards."""
    lp.add_grant()
    assert not lp.run().failed
    lp.server.sql(f"REVOKE CONNECTION ADMIN ON *.* FROM {account(lp.admin_user)}")
    before = _catalog(lp)
    for _ in range(2):
        assert doctor(lp)[0] == 1
    assert _catalog(lp) == before and len(before[0]) == 4  # two roles, the reconciler, a login
    name = lock_name(Target("db1", "mysql", lp.dsn_env, role_prefix=lp.prefix))
    assert lp.server.sql(f"SELECT IS_USED_LOCK({literal(name)})") == [(None,)]


def test_a_held_lock_is_a_warning_and_stays_held(lp: LpWorld) -> None:
    name = lock_name(Target("db1", "mysql", lp.dsn_env, role_prefix=lp.prefix))
    with lp.server.conn() as holder, holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", [name])
        got, pid = cur.fetchone()
        assert got == 1
        code, found = doctor(lp)
        assert code == 2 and [f[1] for f in found] == ["lock"]
        assert found[0][2] == f"let that run finish, or end it: KILL CONNECTION {pid}"
        cur.execute("SELECT IS_USED_LOCK(%s)", [name])
        assert cur.fetchone() == (pid,)
