"""The MySQL engine's pure side: quoting, DSNs, and the statements for both dialects. MySQL 8's
branches are checked here, as generated SQL; MariaDB's also run against a real server."""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from reconciler.engines.mysql import (MARIADB, MYSQL8, MysqlEngine, account, account_key,
                                      identifier, literal, parse_dsn)
from reconciler.errors import ConfigError
from reconciler.model import ActualRole, ActualState, DesiredLogin, Grant, Target, login_name
from reconciler.plan import Action, Changes, TargetPlan

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
VERIFIER = "*" + "A1" * 20
TARGET = Target(name="db1", engine="mysql", dsn_env="X", role_prefix="jit_",
                expiry_backstop="event")
GRANT = Grant(path="grants/db1/a.yaml", grantee="alice", target="db1", access="ro",
              expires=NOW + timedelta(hours=2), reason="r", password_verifier=VERIFIER)
WANT = DesiredLogin(name="jit_alice_ro", grantee="alice", access="ro", expires=GRANT.expires,
                    roles=("app_ro", "app_extra"), connection_limit=3, verifier=VERIFIER,
                    grants=(GRANT,))


def state(flavor: str, scheduler: bool = True) -> ActualState:
    return ActualState(roles=MappingProxyType({}), existing_groups=frozenset({"app_ro"}),
                       admin="root@localhost", admin_is_superuser=False, database="ops",
                       event_scheduler=scheduler, flavor=flavor, event_schema="ops")


def render(action: Action, flavor: str, target: Target = TARGET) -> list[tuple[str, str, str]]:
    plan = TargetPlan(target, (action,))
    return [(s.phase, s.sql, s.shown) for s in MysqlEngine().render(plan, state(flavor))]


CREATE = Action(target="db1", kind="create", login=WANT.name, cause="granted", desired=WANT)


def test_mysql8_create_uses_native_password_and_all_default_roles() -> None:
    sql = [s for _, s, _ in render(CREATE, "mysql")]
    assert sql[0] == ("CREATE USER 'jit_alice_ro'@'%' IDENTIFIED WITH mysql_native_password "
                      f"AS '{VERIFIER}' WITH MAX_USER_CONNECTIONS 3 ACCOUNT LOCK")
    assert "GRANT `app_ro` TO 'jit_alice_ro'@'%'" in sql
    assert "SET DEFAULT ROLE ALL TO 'jit_alice_ro'@'%'" in sql
    assert sql[-1] == "ALTER USER 'jit_alice_ro'@'%' ACCOUNT UNLOCK"


def test_mariadb_create_uses_identified_by_password_and_one_default_role() -> None:
    sql = [s for _, s, _ in render(CREATE, "mariadb")]
    assert sql[0].startswith("CREATE USER 'jit_alice_ro'@'%' IDENTIFIED BY PASSWORD '*A1")
    assert "SET DEFAULT ROLE `app_ro` FOR 'jit_alice_ro'@'%'" in sql
    assert sql[-1] == "ALTER USER 'jit_alice_ro'@'%' ACCOUNT UNLOCK"


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_verifier_is_never_shown(flavor: str) -> None:
    rows = render(CREATE, flavor)
    assert any(VERIFIER in sql for _, sql, _ in rows)
    assert not any(VERIFIER in shown for _, _, shown in rows)
    assert any("'********'" in shown for _, _, shown in rows)


def test_created_account_is_locked_until_the_last_statement() -> None:
    sql = [s for _, s, _ in render(CREATE, "mariadb")]
    assert "ACCOUNT LOCK" in sql[0] and "UNLOCK" in sql[-1]
    assert not any("UNLOCK" in s for s in sql[:-1])


def test_backstop_event_is_created_in_utc() -> None:
    sql = [s for _, s, _ in render(CREATE, "mariadb")]
    event = next(s for s in sql if s.startswith("CREATE EVENT"))
    assert event.startswith("CREATE EVENT `ops`.`jitgrant_expire_jit_alice_ro` ON SCHEDULE AT "
                            "'2026-06-01 14:00:00' ON COMPLETION NOT PRESERVE")
    assert event.endswith("DO ALTER USER 'jit_alice_ro'@'%' ACCOUNT LOCK")
    assert not any("EVENT" in s for s in [x for _, x, _ in render(
        CREATE, "mariadb", replace(TARGET, expiry_backstop=None))])


def revoke_action(**fields: object) -> Action:
    have = ActualRole(name="jit_bob_ro", user="jit_bob_ro", host="%", session_ids=(7, 9),
                      sessions=2, events=("ops.jitgrant_expire_jit_bob_ro",))
    return Action(target="db1", kind="revoke", login="jit_bob_ro", cause="expired",
                  actual=replace(have, **fields))  # type: ignore[arg-type]


def test_revocation_locks_then_kills_then_drops() -> None:
    rows = render(revoke_action(), "mariadb")
    assert [(p, s) for p, s, _ in rows] == [
        ("lockout", "ALTER USER 'jit_bob_ro'@'%' ACCOUNT LOCK"),
        ("sessions", "KILL CONNECTION 7"),
        ("sessions", "KILL CONNECTION 9"),
        ("main", "DROP USER 'jit_bob_ro'@'%'"),
        ("main", "DROP EVENT IF EXISTS `ops`.`jitgrant_expire_jit_bob_ro`"),
    ]


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_connections_are_killed_by_id(flavor: str) -> None:
    # KILL CONNECTION USER matches the user name on any host: it could hit another account.
    rows = render(revoke_action(), flavor)
    assert [s for p, s, _ in rows if p == "sessions"] == ["KILL CONNECTION 7",
                                                          "KILL CONNECTION 9"]


def test_account_on_another_host_and_roles() -> None:
    other = render(revoke_action(name="jit_bob_ro@localhost", host="localhost"), "mariadb")
    assert other[0][1] == "ALTER USER 'jit_bob_ro'@'localhost' ACCOUNT LOCK"
    role = render(revoke_action(is_role=True, events=()), "mariadb")
    assert [s for _, s, _ in role] == ["DROP ROLE `jit_bob_ro`"]


def test_direct_privileges_are_revoked_then_roles_granted_again() -> None:
    have = ActualRole(name=WANT.name, user=WANT.name, host="%", member_of=frozenset({"x"}))
    changes = Changes(revoke_privileges=True, revoke_roles=("x",), password=True,
                      connection_limit=True, default_roles=True, unlock=True)
    action = Action(target="db1", kind="update", login=WANT.name, cause="drift",
                    desired=WANT, actual=have, changes=changes)
    sql = [s for _, s, _ in render(action, "mysql")]
    revoke_role = sql.index("REVOKE `x` FROM 'jit_alice_ro'@'%'")
    revoke_all = sql.index("REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'jit_alice_ro'@'%'")
    regrant = sql.index("GRANT `app_ro` TO 'jit_alice_ro'@'%'")
    assert revoke_role < revoke_all < regrant
    assert "ALTER USER 'jit_alice_ro'@'%' WITH MAX_USER_CONNECTIONS 3" in sql
    assert "SET DEFAULT ROLE ALL TO 'jit_alice_ro'@'%'" in sql
    assert sql[-1] == "ALTER USER 'jit_alice_ro'@'%' ACCOUNT UNLOCK"


@pytest.mark.parametrize("value, expected", [
    ("plain", "'plain'"), ("it's", "'it\\'s'"), ("back\\slash", "'back\\\\slash'"),
    ("\\'", "'\\\\\\''"), ("%_", "'%_'"), ("nul\0", "'nul\\0'"), ("new\nline", "'new\\nline'"),
])
def test_literal_escapes_quotes_and_backslashes(value: str, expected: str) -> None:
    assert literal(value) == expected


def test_identifier_doubles_backticks_and_refuses_nul() -> None:
    assert identifier("a`b") == "`a``b`"
    with pytest.raises(ValueError):
        identifier("a\0b")


def test_account_quotes_user_and_host() -> None:
    assert account("o'neil", "%") == "'o\\'neil'@'%'"
    assert account_key("u", "%") == "u" and account_key("u", "") == "u"
    assert account_key("u", "localhost") == "u@localhost"


def test_names_are_cut_to_32_characters() -> None:
    name = login_name("jit_", "a-very-long-handle-for-someone", "readonly", "mysql")
    assert len(name) == 32 and name[-7] == "_"


def test_parse_dsn() -> None:
    assert parse_dsn("mysql://u%40x:p%3Aw@db.example:3307/ops") == {
        "host": "db.example", "port": 3307, "user": "u@x", "password": "p:w",
        "database": "ops"}
    assert parse_dsn("mysql://root@127.0.0.1/?unix_socket=/run/m.sock")["unix_socket"] == \
        "/run/m.sock"
    with pytest.raises(ConfigError):
        parse_dsn("postgresql://x@y/z")


def test_parse_dsn_reads_the_tls_parameters() -> None:
    """Issue 11, finding 10: ssl_mode and ssl_ca were dropped without a word."""
    base = "mysql://root@127.0.0.1/"
    assert parse_dsn(base)["host"] == "127.0.0.1" and "ssl" not in parse_dsn(base)
    assert parse_dsn(base + "?ssl_mode=disabled")["ssl_disabled"] is True
    assert "ssl" not in parse_dsn(base + "?ssl_mode=PREFERRED")
    required = parse_dsn(base + "?ssl_mode=REQUIRED")["ssl"]
    assert isinstance(required, ssl.SSLContext) and required.verify_mode == ssl.CERT_NONE
    verify_ca = parse_dsn(base + "?ssl_mode=VERIFY_CA")["ssl"]
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    identity = parse_dsn(base + "?ssl_mode=VERIFY_IDENTITY")["ssl"]
    assert identity.verify_mode == ssl.CERT_REQUIRED and identity.check_hostname


@pytest.mark.parametrize("query", ["sslmode=require", "ssl_mode=REQUIRED&ssl_mode=DISABLED",
                                   "ssl_mode=ON", "ssl_mode=DISABLED&ssl_ca=/x",
                                   "ssl_key=/x", "ssl_mode=REQUIRED&ssl_ca=/no/such/file",
                                   "password=hunter2"])
def test_parse_dsn_refuses_what_it_would_otherwise_drop(query: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dsn(f"mysql://root@127.0.0.1/?{query}")
    assert "hunter2" not in str(info.value) and "/no/such" not in str(info.value)
    assert "\n" not in str(info.value)


def test_mysql8_reads_its_own_catalog() -> None:
    assert "mysql.role_edges" in MYSQL8.roles and "mysql.default_roles" in str(MYSQL8.defaults)
    assert "mysql.global_grants" in MYSQL8.privileges and "Super_priv = 'Y'" in MYSQL8.accounts
    assert "mysql.global_priv" in MARIADB.accounts and MARIADB.defaults is None
    for query in (MYSQL8.accounts, MARIADB.accounts, MYSQL8.roles, MARIADB.privileges):
        assert "%(prefix)s" in query and "LIKE" not in query  # _ and % are not wildcards here


# -- MySQL 8: written to the MySQL 8 manual, never yet run against a MySQL 8 server here; these
# pin the rendered SQL so a change to it is deliberate.

def _update(changes: Changes, have: ActualRole | None = None) -> Action:
    have = have or ActualRole(name=WANT.name, user=WANT.name, host="%")
    return Action(target="db1", kind="update", login=WANT.name, cause="drift", desired=WANT,
                  actual=have, changes=changes)


def test_mysql8_password_repair_uses_native_password() -> None:
    out = render(_update(Changes(password=True)), "mysql")
    assert [(s, shown) for _, s, shown in out] == [
        (f"ALTER USER 'jit_alice_ro'@'%' IDENTIFIED WITH mysql_native_password AS '{VERIFIER}'",
         "ALTER USER 'jit_alice_ro'@'%' IDENTIFIED WITH mysql_native_password AS '********'")]


@pytest.mark.parametrize("flavor, expected", [
    ("mariadb", ["REVOKE ADMIN OPTION FOR `app_ro` FROM 'jit_alice_ro'@'%'"]),
    ("mysql", ["REVOKE `app_ro` FROM 'jit_alice_ro'@'%'", "GRANT `app_ro` TO 'jit_alice_ro'@'%'"]),
])
def test_the_admin_option_is_revoked_in_each_dialect(flavor: str, expected: list[str]) -> None:
    sql = [s for _, s, _ in render(_update(Changes(revoke_admin=("app_ro",))), flavor)]
    assert sql[:len(expected)] == expected
    assert not any("ADMIN OPTION" in s for s in sql[len(expected):])


def test_mysql8_a_login_without_roles_gets_no_default_role() -> None:
    want = replace(WANT, roles=())
    action = Action(target="db1", kind="update", login=want.name, cause="drift", desired=want,
                    actual=ActualRole(name=want.name, user=want.name, host="%"),
                    changes=Changes(default_roles=True))
    assert [s for _, s, _ in render(action, "mysql")] == ["SET DEFAULT ROLE NONE TO "
                                                          "'jit_alice_ro'@'%'"]


def test_mysql8_catalog_queries_name_their_columns() -> None:
    for column in ("Super_priv", "Create_user_priv", "Grant_priv", "account_locked"):
        assert column in MYSQL8.accounts
    assert "WITH RECURSIVE" in str(MYSQL8.groups).upper()
