"""An independent reading of the SQL the engines render: every statement must have one of the
known shapes, with identifiers and literals quoted the way the driver quotes them, and touch only
the login of its own action.

A statement that matches no shape fails the test: a quote, semicolon or backslash in a name that
escaped its quoting would leave a statement of some other shape. The patterns are anchored
(fullmatch), so nothing can trail a statement either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.engines.base import Statement
from reconciler.engines.mysql import EVENT_PREFIX, account_key
from reconciler.engines.postgres import disarm_sql
from reconciler.model import ActualState, Target
from reconciler.plan import Action, TargetPlan

# PostgreSQL: "identifiers" with "" doubled; 'literals' with '' doubled, written E'...' when they
# hold a backslash (doubled too); psycopg puts a space before E'' and before negative numbers.
PG_ID = r'"(?:[^"]|"")*"'
PG_STR = r"(?: ?E'(?:[^'\\]|''|\\\\)*'|'(?:[^'\\]|'')*')"
PG_INT = r"(?:\d+| -\d+)"
PG_ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
PG_FIX = ("(?:LOGIN|NOLOGIN|NOSUPERUSER|NOCREATEDB|NOCREATEROLE|NOREPLICATION|NOBYPASSRLS|"
          f"INHERIT|CONNECTION LIMIT {PG_INT}|VALID UNTIL {PG_STR}|PASSWORD (?:NULL|{PG_STR}))")

# MySQL: `identifiers` with `` doubled; 'literals' escaped by pymysql, with backslashes.
MY_ID = r"`(?:[^`]|``)*`"
MY_STR = r"'(?:[^'\\]|\\.)*'"
MY_ACCT = f"(?P<user>{MY_STR})@(?P<host>{MY_STR})"
MY_AUTH = f"(?:IDENTIFIED BY PASSWORD {MY_STR}|IDENTIFIED WITH mysql_native_password AS {MY_STR})"


def _shapes(**patterns: str) -> dict[str, re.Pattern[str]]:
    return {name: re.compile(p, re.DOTALL) for name, p in patterns.items()}


PG = _shapes(
    create=(f"CREATE ROLE (?P<login>{PG_ID}) WITH {PG_ATTRS} PASSWORD (?:NULL|{PG_STR}) "
            f"CONNECTION LIMIT {PG_INT} VALID UNTIL {PG_STR}"),
    grant=f"GRANT (?P<groups>{PG_ID}(?:, {PG_ID})*) TO (?P<login>{PG_ID})",
    comment=f"COMMENT ON ROLE (?P<login>{PG_ID}) IS {PG_STR}",
    alter=f"ALTER ROLE (?P<login>{PG_ID}) WITH {PG_FIX}(?: {PG_FIX})*",
    reset=f"ALTER ROLE (?P<login>{PG_ID})(?: IN DATABASE {PG_ID})? RESET ALL",
    # access-level settings: a parameter name quoted part by part, the value a literal
    reset_one=f'ALTER ROLE (?P<login>{PG_ID}) RESET "[a-z_][a-z0-9_]*"(?:\\."[a-z_][a-z0-9_]*")?',
    set=(f'ALTER ROLE (?P<login>{PG_ID}) SET "[a-z_][a-z0-9_]*"(?:\\."[a-z_][a-z0-9_]*")? = '
         f"{PG_STR}"),
    revoke=f"REVOKE (?P<group>{PG_ID}) FROM (?P<member>{PG_ID})(?: GRANTED BY {PG_ID})?",
    revoke_admin=f"REVOKE ADMIN OPTION FOR (?P<admin_of>{PG_ID}) FROM (?P<login>{PG_ID})",
    terminate=(r"SELECT pg_terminate_backend\(pid, 5000\) FROM pg_stat_activity "
               rf"WHERE usename = (?P<value>{PG_STR}) AND pid <> pg_backend_pid\(\)"),
    inherit=f"GRANT (?P<login>{PG_ID}) TO (?P<admin>{PG_ID}) WITH INHERIT TRUE, SET FALSE",
    reassign=f"REASSIGN OWNED BY (?P<login>{PG_ID}) TO (?P<owner>{PG_ID})",
    drop_owned=f"DROP OWNED BY (?P<login>{PG_ID})",
    drop=f"DROP ROLE (?P<login>{PG_ID})",
)

MY = _shapes(
    create=f"CREATE USER {MY_ACCT} {MY_AUTH} WITH MAX_USER_CONNECTIONS \\d+ ACCOUNT LOCK",
    grant=f"GRANT (?P<group>{MY_ID}) TO {MY_ACCT}",
    default=f"SET DEFAULT ROLE (?:ALL|NONE|(?P<group>{MY_ID})) (?:TO|FOR) {MY_ACCT}",
    drop_event=f"DROP EVENT IF EXISTS (?P<schema>{MY_ID})\\.(?P<event>{MY_ID})",
    event=(f"CREATE EVENT (?P<schema>{MY_ID})\\.(?P<event>{MY_ID}) ON SCHEDULE AT "
           f"'[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}' ON COMPLETION "
           f"NOT PRESERVE COMMENT {MY_STR} DO ALTER USER {MY_ACCT} ACCOUNT LOCK"),
    revoke=f"REVOKE (?P<member_of>{MY_ID}) FROM {MY_ACCT}",
    revoke_all=f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {MY_ACCT}",
    revoke_admin=f"REVOKE ADMIN OPTION FOR (?P<admin_of>{MY_ID}) FROM {MY_ACCT}",
    alter=(f"ALTER USER {MY_ACCT} (?:{MY_AUTH}|WITH MAX_USER_CONNECTIONS \\d+|ACCOUNT LOCK|"
           "ACCOUNT UNLOCK)"),
    limits=(f"ALTER USER {MY_ACCT} WITH (?:MAX_(?:QUERIES|UPDATES|CONNECTIONS)_PER_HOUR \\d+)"
            "(?: MAX_(?:QUERIES|UPDATES|CONNECTIONS)_PER_HOUR \\d+)*"),
    audit_list=f"SET GLOBAL server_audit_incl_users = .*{MY_STR}.*",
    drop_role=f"DROP ROLE (?P<role>{MY_ID})",
    drop=f"DROP USER {MY_ACCT}",
    kill=r"KILL CONNECTION (?P<id>\d+)",
)

# Statements that only a revocation may run, and only a creation.
PG_REVOKE_ONLY = {"terminate", "inherit", "reassign", "drop_owned", "drop"}
MY_REVOKE_ONLY = {"kill", "drop_role", "drop"}


def pg_unquote(text: str) -> str:
    """A psycopg identifier or literal back to its value."""
    text = text.lstrip(" ")
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    if text.startswith("E'"):
        return text[2:-1].replace("''", "'").replace("\\\\", "\\")
    return text[1:-1].replace("''", "'")


_MY_ESCAPES = {"0": "\0", "n": "\n", "r": "\r", "Z": "\x1a"}


def my_unquote(text: str) -> str:
    """A backtick identifier or a pymysql literal back to its value."""
    if text.startswith("`"):
        return text[1:-1].replace("``", "`")
    return re.sub(r"\\(.)", lambda m: _MY_ESCAPES.get(m.group(1), m.group(1)), text[1:-1],
                  flags=re.DOTALL)


def _parse(stmt: Statement, shapes: dict[str, re.Pattern[str]]) -> tuple[str, dict[str, str]]:
    for name, regex in shapes.items():
        m = regex.fullmatch(stmt.sql)
        if m:
            return name, {k: v for k, v in m.groupdict().items() if v is not None}
    raise AssertionError(f"statement of no known shape: {stmt.sql!r}")


@dataclass
class Sacred:
    """What no statement may ever create, alter or drop: roles (PostgreSQL) or user names
    (MySQL) outside the namespace or protected inside it, and the group roles, which may only
    be what a GRANT or REVOKE hands out or takes back."""

    names: frozenset[str]
    groups: frozenset[str]


def check(plan: TargetPlan, statements: list[Statement], actual: ActualState,
          sacred: Sacred) -> None:
    """Every action stays in the namespace; every statement touches only its action's login."""
    target = plan.target
    for action in plan.actions:
        check_action(target, action, actual, sacred)
    for stmt in statements:
        assert 0 <= stmt.action < len(plan.actions), stmt
        action = plan.actions[stmt.action]
        if target.engine == "postgres":
            _check_pg(stmt, action, actual)
        else:
            _check_my(stmt, action, actual)
        # What is printed is what runs, but for the password.
        if "PASSWORD" not in stmt.sql and "IDENTIFIED" not in stmt.sql:
            assert stmt.shown == stmt.sql, stmt


def subject(target: Target, action: Action) -> str:
    """The role (PostgreSQL) or user name (MySQL) an action changes."""
    if target.engine == "mysql" and action.actual is not None and action.actual.user:
        return action.actual.user
    return action.login


def check_action(target: Target, action: Action, actual: ActualState, sacred: Sacred) -> None:
    name = subject(target, action)
    assert name.startswith(target.role_prefix), f"{action.kind} outside the namespace: {name!r}"
    assert name not in sacred.names, f"{action.kind} of a protected role: {name!r}"
    assert name not in sacred.groups, f"{action.kind} of a group role: {name!r}"
    if action.kind == "create":
        assert action.login not in actual.roles, f"create of an existing role {action.login!r}"
        assert action.desired is not None and action.desired.name == action.login
    else:
        assert action.actual is not None and actual.roles.get(action.login) == action.actual


def _check_pg(stmt: Statement, action: Action, actual: ActualState) -> None:
    if stmt.sql.startswith("DO "):
        # The disarm block is fixed text but for the login's literal: it must be exactly the
        # block for this action's login (test_planted_objects runs it on real servers).
        assert action.kind == "revoke" and stmt.sql == disarm_sql(action.login), stmt
        return
    shape, found = _parse(stmt, PG)
    if shape == "grant" and action.kind == "revoke":
        # Before PostgreSQL 16 the reconciler's membership in the login has no options.
        shape, found = "inherit", {"login": found["groups"], "admin": found["login"]}
    want, have, login = action.desired, action.actual, action.login
    if shape in PG_REVOKE_ONLY:
        assert action.kind == "revoke", stmt
    if shape == "create":
        assert action.kind == "create", stmt
    if shape == "revoke":
        # Either a group leaves the login, or the login leaves a role that holds it.
        group, member = pg_unquote(found["group"]), pg_unquote(found["member"])
        assert have is not None, stmt
        if member == login:
            assert group in have.member_of, stmt
        else:
            assert group == login and member in have.members and member != actual.admin, stmt
        return
    if shape == "grant":
        groups = [pg_unquote(g) for g in re.findall(PG_ID, found["groups"])]
        assert want is not None and set(groups) <= set(want.roles), stmt
    if shape == "revoke_admin":
        assert have is not None and pg_unquote(found["admin_of"]) in have.admin_of, stmt
    if shape == "inherit":
        assert pg_unquote(found["admin"]) == actual.admin, stmt
    if shape == "reassign":
        assert pg_unquote(found["owner"]) not in actual.superusers, f"to a superuser: {stmt}"
    touched = pg_unquote(found["login"] if "login" in found else found["value"])
    assert touched == login, f"statement of action {login!r} touches {touched!r}: {stmt.sql}"


def _check_my(stmt: Statement, action: Action, actual: ActualState) -> None:
    shape, found = _parse(stmt, MY)
    want, have = action.desired, action.actual
    if shape in MY_REVOKE_ONLY:
        assert action.kind == "revoke" and have is not None, stmt
    if shape == "create":
        assert action.kind == "create", stmt
    if shape == "kill":
        assert have is not None and int(found["id"]) in have.session_ids, stmt
        return
    if shape == "drop_event":
        events = {EVENT_PREFIX + action.login} | {
            e.partition(".")[2] for e in (have.events if have else ())}
        assert my_unquote(found["event"]) in events, stmt
        return
    if shape == "drop_role":
        assert have is not None and have.is_role and my_unquote(found["role"]) == have.user, stmt
        return
    key = account_key(my_unquote(found["user"]), my_unquote(found["host"]))
    assert key == action.login, f"statement of action {action.login!r} touches {key!r}: {stmt.sql}"
    if shape == "event":
        assert my_unquote(found["event"]) == EVENT_PREFIX + action.login, stmt
        assert my_unquote(found["schema"]) == actual.event_schema, stmt
    if "group" in found:
        assert want is not None and my_unquote(found["group"]) in want.roles, stmt
    if shape == "revoke":
        assert have is not None and my_unquote(found["member_of"]) in have.member_of, stmt
    if shape == "revoke_admin":
        assert have is not None and my_unquote(found["admin_of"]) in have.admin_of, stmt
