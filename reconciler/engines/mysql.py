"""MySQL 8 and MariaDB 10.5+: every statement jitgrant sends to such a server is in this file.

MySQL DDL is not transactional, so each statement commits on its own. The order is chosen so
that a run killed between any two statements leaves no usable access behind: a new account is
created locked and unlocked last; a revoked account is locked first, then its connections are
killed, then it is dropped."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql
from pymysql.converters import escape_string

from ..dsn import where
from ..errors import ConfigError, ConnectionLost, TargetError, one_line
from ..model import ActualRole, ActualState, Target
from ..plan import Action, TargetPlan, wants_backstop
from . import mysql_settings, mysql_usage
from .base import (PHASES, ActionResult, Progress, Statement, dsn_secrets, render_plan,
                   scrubbed_line, take_lock)

MASK = "'********'"
EVENT_PREFIX = "jitgrant_expire_"
SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
# MySQL 8 keeps static global privileges as columns of mysql.user.
MYSQL8_PRIVILEGE_COLUMNS = (
    "Select_priv", "Insert_priv", "Update_priv", "Delete_priv", "Create_priv", "Drop_priv",
    "Reload_priv", "Shutdown_priv", "Process_priv", "File_priv", "Grant_priv",
    "References_priv", "Index_priv", "Alter_priv", "Show_db_priv", "Super_priv",
    "Create_tmp_table_priv", "Lock_tables_priv", "Execute_priv", "Repl_slave_priv",
    "Repl_client_priv", "Create_view_priv", "Show_view_priv", "Create_routine_priv",
    "Alter_routine_priv", "Create_user_priv", "Event_priv", "Trigger_priv",
    "Create_tablespace_priv", "Create_role_priv", "Drop_role_priv")
# An account holding any of these on *.* administers the server: it is left alone like a
# PostgreSQL superuser. SUPER (ALL PRIVILEGES includes it), CREATE USER (create, alter and drop
# any account: the power jitgrant itself runs with) and GRANT OPTION (hand its privileges on).
MYSQL8_ADMIN_COLUMNS = ("Super_priv", "Create_user_priv", "Grant_priv")
AUTH_OR = "several methods"  # the plugin of a MariaDB account with more than one way in
MARIADB_ADMIN_BITS = (1 << 15) | (1 << 25) | (1 << 10)  # SUPER, CREATE USER, GRANT in $.access


# -- quoting: identifiers in backticks, values as escaped literals ------------------------------


def literal(value: str) -> str:
    """A string literal. The session runs without NO_BACKSLASH_ESCAPES, so backslashes are
    escaped as well as quotes (pymysql's own escaping)."""
    return "'" + str(escape_string(value)) + "'"


def identifier(name: str) -> str:
    if "\0" in name:
        raise ValueError("identifier contains a NUL byte")
    return "`" + name.replace("`", "``") + "`"


def account(user: str, host: str = "%") -> str:
    return f"{literal(user)}@{literal(host)}"


def account_key(user: str, host: str) -> str:
    """How accounts are named in jitgrant's state: the login for host %, else user@host (such an
    account is never one jitgrant made, so it is revoked as unknown)."""
    return user if host in ("%", "") else f"{user}@{host}"  # MariaDB roles have host ''



def event_name(login: str) -> str:
    return EVENT_PREFIX + login


# -- the engine: pure rendering --------------------------------------------------------------


class MysqlEngine:
    name = "mysql"

    def connect(self, target: Target, dsn: str) -> MysqlSession:
        return MysqlSession(target, dsn)

    def render(self, plan: TargetPlan, actual: ActualState) -> list[Statement]:
        return render_plan(plan, actual, _render_action)


def _stmt(index: int, phase: str, text: str, shown: str | None = None) -> Statement:
    return Statement(index, phase, text, shown if shown is not None else text)


def _mariadb(actual: ActualState) -> bool:
    return actual.flavor != "mysql"


def _identified(verifier: str, actual: ActualState, secret: bool) -> str:
    value = literal(verifier) if secret else MASK
    if _mariadb(actual):
        return f"IDENTIFIED BY PASSWORD {value}"
    return f"IDENTIFIED WITH mysql_native_password AS {value}"


def _render_action(index: int, action: Action, target: Target,
                   actual: ActualState) -> list[Statement]:
    if action.kind == "create":
        return _render_create(index, action, target, actual)
    if action.kind == "update":
        return _render_update(index, action, target, actual)
    return _render_revoke(index, action, actual)


def _render_create(index: int, action: Action, target: Target,
                   actual: ActualState) -> list[Statement]:
    want = action.desired
    assert want is not None and want.verifier is not None
    acct = account(want.name)
    limit = f"WITH MAX_USER_CONNECTIONS {int(want.connection_limit or 0)}"
    head = f"CREATE USER {acct} "
    out = [_stmt(index, "main",
                 f"{head}{_identified(want.verifier, actual, True)} {limit} ACCOUNT LOCK",
                 f"{head}{_identified(want.verifier, actual, False)} {limit} ACCOUNT LOCK")]
    out += [_stmt(index, "main", f"GRANT {identifier(role)} TO {acct}") for role in want.roles]
    out += _default_roles(index, acct, want.roles, actual)
    if want.settings:
        out.append(_stmt(index, "main", mysql_settings.limits_sql(acct, want.settings, ())))
    if want.audit and actual.server_audit == "list":  # in the audit list before it can log in
        out.append(_stmt(index, "main", mysql_settings.audit_add_sql(want.name)))
    if wants_backstop(target, actual):
        out += _backstop(index, want.name, want.expires, actual)
    out.append(_stmt(index, "main", f"ALTER USER {acct} ACCOUNT UNLOCK"))  # usable only now
    return out


def _default_roles(index: int, acct: str, roles: Sequence[str],
                   actual: ActualState) -> list[Statement]:
    if not _mariadb(actual):
        return [_stmt(index, "main", f"SET DEFAULT ROLE {'ALL' if roles else 'NONE'} TO {acct}")]
    role = identifier(roles[0]) if roles else "NONE"  # MariaDB has a single default role
    return [_stmt(index, "main", f"SET DEFAULT ROLE {role} FOR {acct}")]


def _event(actual: ActualState, login: str) -> str:
    assert actual.event_schema is not None
    return f"{identifier(actual.event_schema)}.{identifier(event_name(login))}"


def _backstop(index: int, login: str, expires: datetime, actual: ActualState) -> list[Statement]:
    """A one-shot event that locks the account at its expiry, even if jitgrant never runs."""
    at = expires.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    name = _event(actual, login)
    return [
        _stmt(index, "main", f"DROP EVENT IF EXISTS {name}"),
        _stmt(index, "main", f"CREATE EVENT {name} ON SCHEDULE AT {literal(at)} "
                             f"ON COMPLETION NOT PRESERVE "
                             f"COMMENT {literal('jitgrant expiry backstop for ' + login)} "
                             f"DO ALTER USER {account(login)} ACCOUNT LOCK"),
    ]


def _render_update(index: int, action: Action, target: Target,
                   actual: ActualState) -> list[Statement]:
    want, have, ch = action.desired, action.actual, action.changes
    assert want is not None and have is not None and want.verifier is not None
    acct = account(have.user or want.name, have.host)
    out: list[Statement] = []
    # Roles first: on MariaDB, REVOKE ALL also takes away role grants, so those are granted
    # again afterwards, and a later REVOKE of a role would fail.
    out += [_stmt(index, "main", f"REVOKE {identifier(r)} FROM {acct}") for r in ch.revoke_roles]
    regrant = set(ch.grant_roles)
    if ch.revoke_privileges:
        out.append(_stmt(index, "main", f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {acct}"))
        regrant = set(want.roles)
    if ch.password:
        head = f"ALTER USER {acct} "
        out.append(_stmt(index, "main", head + _identified(want.verifier, actual, True),
                         head + _identified(want.verifier, actual, False)))
    if ch.connection_limit:
        out.append(_stmt(index, "main", f"ALTER USER {acct} WITH MAX_USER_CONNECTIONS "
                                        f"{int(want.connection_limit or 0)}"))
    if ch.set_settings or ch.reset_settings:
        out.append(_stmt(index, "main", mysql_settings.limits_sql(acct, ch.set_settings,
                                                                   ch.reset_settings)))
    if ch.audit_add:
        out.append(_stmt(index, "main", mysql_settings.audit_add_sql(have.user or want.name)))
    if ch.audit_remove:
        out.append(_stmt(index, "main", mysql_settings.audit_remove_sql(have.user)))
    out += [_stmt(index, "main", f"GRANT {identifier(r)} TO {acct}") for r in sorted(regrant)]
    out += _revoke_admin(index, acct, [r for r in ch.revoke_admin if r not in regrant], actual)
    if ch.default_roles or ch.revoke_privileges or ch.grant_roles or ch.revoke_roles \
            or ch.revoke_admin:
        out += _default_roles(index, acct, want.roles, actual)
    if ch.backstop:
        out += _backstop(index, want.name, want.expires, actual)
    out += [_stmt(index, "main", f"DROP EVENT IF EXISTS {_event_ref(actual, e)}")
            for e in ch.drop_events]
    if ch.unlock:
        out.append(_stmt(index, "main", f"ALTER USER {acct} ACCOUNT UNLOCK"))
    if have.superuser:
        # It was made an administrator behind jitgrant's back: its open connections keep
        # their global privileges until they end, so they end now (reconnecting works).
        out += [_stmt(index, "main", f"KILL CONNECTION {int(i)}") for i in have.session_ids]
    return out


def _revoke_admin(index: int, acct: str, roles: Sequence[str],
                  actual: ActualState) -> list[Statement]:
    """MariaDB revokes the admin option alone; MySQL 8's REVOKE has no such form (written to
    the MySQL 8 manual, not yet tested against a server), so the role is revoked and granted
    again without it (the default roles are set again after this)."""
    if _mariadb(actual):
        return [_stmt(index, "main", f"REVOKE ADMIN OPTION FOR {identifier(r)} FROM {acct}")
                for r in roles]
    return [_stmt(index, "main", sql) for r in roles
            for sql in (f"REVOKE {identifier(r)} FROM {acct}", f"GRANT {identifier(r)} TO {acct}")]


def _event_ref(actual: ActualState, qualified: str) -> str:
    schema, _, name = qualified.partition(".")
    return f"{identifier(schema)}.{identifier(name)}"


def _render_revoke(index: int, action: Action, actual: ActualState) -> list[Statement]:
    have = action.actual
    assert have is not None
    out: list[Statement] = []
    if have.is_role:
        out.append(_stmt(index, "main", f"DROP ROLE {identifier(have.user)}"))
    else:
        acct = account(have.user, have.host)
        out.append(_stmt(index, "lockout", f"ALTER USER {acct} ACCOUNT LOCK"))
        out += _kill(index, have) if action.kill_sessions else []
        out.append(_stmt(index, "main", f"DROP USER {acct}"))
        if have.audited:  # its name goes from the audit list once it cannot log in
            out.append(_stmt(index, "main", mysql_settings.audit_remove_sql(have.user)))
    out += [_stmt(index, "main", f"DROP EVENT IF EXISTS {_event_ref(actual, e)}")
            for e in have.events]
    return out


def _kill(index: int, have: ActualRole) -> list[Statement]:
    """The connections seen when planning, by id. execute() looks again once the account is
    locked and kills what it finds, since a connection could open between the two."""
    return [_stmt(index, "sessions", f"KILL CONNECTION {int(i)}") for i in have.session_ids]


# -- inspection queries ----------------------------------------------------------------------

_INFO = "SELECT CURRENT_USER(), VERSION(), @@event_scheduler, DATABASE()"
# (mysql_usage.CONNECTIONS: BINARY, since PROCESSLIST.USER compares case-insensitively, and
# 'ROOT' is not 'root'.)
ER_NO_SUCH_THREAD = 1094
# The reconciler's own global privileges; GRANTEE reads 'user'@'host', quoted as literals are.
_OWN_PRIVILEGES = ("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
                   "WHERE GRANTEE = %(grantee)s")
_PREFIX = "LEFT({col}, CHAR_LENGTH(%(prefix)s)) = %(prefix)s"


@dataclass(frozen=True)
class Queries:
    accounts: str
    roles: str  # (user, host, role, with admin option)
    defaults: str | None  # (user, host, role); MariaDB keeps it with the account
    privileges: str  # (user, host) with any privilege granted to the account itself
    # (group, role it leads to, that role administers the server, it is the reconciler's
    # account): each group among %(groups)s that exists as a role, with itself and every role
    # it was granted, directly or not
    groups: str
    events: str = ("SELECT EVENT_SCHEMA, EVENT_NAME, EXECUTE_AT, TIME_ZONE "
                   "FROM information_schema.EVENTS WHERE "
                   + _PREFIX.format(col="EVENT_NAME").replace("%(prefix)s", "%(events)s"))


def _object_privileges(user: str, host: str) -> str:
    tables = ("mysql.db", "mysql.tables_priv", "mysql.columns_priv", "mysql.procs_priv")
    return " UNION ".join(f"SELECT {user}, {host} FROM {t} WHERE " + _PREFIX.format(col=user)
                          for t in tables)


# What the access levels' roles hold WITH GRANT OPTION; the same tables in MariaDB (where
# mysql.user is a view) and MySQL 8.
_GRANT_OPTIONS = (
    "SELECT User, 'global privileges' FROM mysql.user WHERE Grant_priv = 'Y' AND User IN "
    "%(groups)s UNION ALL SELECT User, CONCAT('database ', Db) FROM mysql.db "
    "WHERE Grant_priv = 'Y' AND User IN %(groups)s UNION ALL "
    "SELECT User, CONCAT('table ', Db, '.', Table_name) FROM mysql.tables_priv "
    "WHERE FIND_IN_SET('Grant', Table_priv) AND User IN %(groups)s UNION ALL "
    "SELECT User, CONCAT('routine ', Db, '.', Routine_name) FROM mysql.procs_priv "
    "WHERE FIND_IN_SET('Grant', Proc_priv) AND User IN %(groups)s ORDER BY 1, 2")
# Grants recorded with a login of the namespace as grantor ('user@host'): DROP USER keeps them.
# Database-wide and global grants record no grantor, so those cannot be told.
_GRANTS_MADE = (
    "SELECT Grantor, CONCAT(Table_priv, ' on table ', Db, '.', Table_name, ' to ', User, '@', "
    "Host) FROM mysql.tables_priv WHERE " + _PREFIX.format(col="Grantor") + " UNION ALL "
    "SELECT Grantor, CONCAT(Proc_priv, ' on routine ', Db, '.', Routine_name, ' to ', User, "
    "'@', Host) FROM mysql.procs_priv WHERE " + _PREFIX.format(col="Grantor") + " ORDER BY 1, 2")


def _by_first(rows: list[Any]) -> Mapping[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for key, what in rows:
        found.setdefault(str(key), []).append(str(what))
    return MappingProxyType({key: tuple(items) for key, items in found.items()})


def _grants_made(rows: list[Any]) -> Mapping[str, tuple[str, ...]]:
    """Keyed by the grantor's user, which is how jitgrant names its logins (host %): the
    server records 'user@the client's host', not the account's host."""
    return _by_first([(str(grantor).rpartition("@")[0], what) for grantor, what in rows])


MARIADB = Queries(
    # With `IDENTIFIED VIA a OR b` (10.4+), $.auth_or lists every method, {} standing for the
    # top-level one: any other method there is a way in besides the verifier, so the plugin
    # reads as AUTH_OR and the password is set again, which leaves the single verifier.
    accounts=("SELECT User, Host, JSON_VALUE(Priv, '$.is_role'), "
              "IF(JSON_LENGTH(Priv, '$.auth_or') > 1 OR JSON_LENGTH(Priv, '$.auth_or[0]') > 0, "
              f"{literal(AUTH_OR)}, JSON_VALUE(Priv, '$.plugin')), "
              "JSON_VALUE(Priv, '$.authentication_string'), "
              "JSON_VALUE(Priv, '$.account_locked'), "
              "JSON_VALUE(Priv, '$.max_user_connections'), JSON_VALUE(Priv, '$.default_role'), "
              "JSON_VALUE(Priv, '$.access'), "
              f"CAST(JSON_VALUE(Priv, '$.access') AS UNSIGNED) & {MARIADB_ADMIN_BITS} <> 0"
              + mysql_settings.MARIADB_COLUMNS
              + " FROM mysql.global_priv WHERE " + _PREFIX.format(col="User")),
    roles=("SELECT User, Host, Role, Admin_option = 'Y' FROM mysql.roles_mapping WHERE "
           + _PREFIX.format(col="User")),
    defaults=None,
    privileges=_object_privileges("User", "Host"),
    groups=("WITH RECURSIVE reach(grp, role) AS (SELECT User, User FROM mysql.global_priv "
            "WHERE JSON_VALUE(Priv, '$.is_role') IN ('true', '1') AND User IN %(groups)s "
            "UNION SELECT r.grp, m.Role FROM reach r JOIN mysql.roles_mapping m "
            "ON m.User = r.role AND m.Host = '') "
            "SELECT r.grp, r.role, CAST(JSON_VALUE(g.Priv, '$.access') AS UNSIGNED) & "
            f"{MARIADB_ADMIN_BITS} <> 0, 0 FROM reach r "
            "JOIN mysql.global_priv g ON g.User = r.role AND g.Host = ''"),
)

MYSQL8 = Queries(
    accounts=("SELECT User, Host, 'false', plugin, authentication_string, "
              "IF(account_locked = 'Y', 'true', 'false'), max_user_connections, NULL, "
              "IF(" + " OR ".join(f"{c} = 'Y'" for c in MYSQL8_PRIVILEGE_COLUMNS)
              + ", 1, 0), " + " OR ".join(f"{c} = 'Y'" for c in MYSQL8_ADMIN_COLUMNS)
              + mysql_settings.MYSQL8_COLUMNS
              + " FROM mysql.user WHERE " + _PREFIX.format(col="User")),
    roles=("SELECT TO_USER, TO_HOST, FROM_USER, WITH_ADMIN_OPTION = 'Y' FROM mysql.role_edges "
           "WHERE " + _PREFIX.format(col="TO_USER")),
    defaults=("SELECT USER, HOST, DEFAULT_ROLE_USER FROM mysql.default_roles WHERE "
              + _PREFIX.format(col="USER")),
    privileges=(_object_privileges("User", "Host") + " UNION SELECT USER, HOST FROM "
                "mysql.global_grants WHERE " + _PREFIX.format(col="USER")),
    # Any account can be granted as a role here, the reconciler's own among them.
    groups=("WITH RECURSIVE reach(grp, role) AS (SELECT DISTINCT User, User FROM mysql.user "
            "WHERE User IN %(groups)s UNION SELECT r.grp, e.FROM_USER FROM reach r "
            "JOIN mysql.role_edges e ON e.TO_USER = r.role) "
            "SELECT r.grp, r.role, MAX(" + " OR ".join(f"u.{c} = 'Y'" for c in
                                                     MYSQL8_ADMIN_COLUMNS)
            + "), MAX(u.User = %(admin)s) FROM reach r JOIN mysql.user u ON u.User = r.role "
            "GROUP BY r.grp, r.role"),
)


# -- the session (I/O) -----------------------------------------------------------------------


def parse_dsn(dsn: str) -> dict[str, Any]:
    """mysql://user:password@host:3306/db?unix_socket=/path&ssl_mode=VERIFY_IDENTITY into
    pymysql's arguments. A DSN that cannot be read is a ConfigError that quotes none of it:
    urllib's own messages quote parts of it, and a password with an unencoded / would land in
    the port. An unknown parameter is refused rather than dropped (a dropped ssl_mode would
    connect in clear text without a word)."""
    try:
        parts = urlsplit(dsn)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ConfigError("it is not a URL with a host and a port from 0 to 65535 (an "
                          "unencoded / or @ in the password, an unclosed [ or a bad "
                          "port)") from None
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ConfigError("a mysql DSN must start with mysql://")
    args: dict[str, Any] = {"host": host or "127.0.0.1", "port": port or 3306,
                            "user": unquote(parts.username or ""),
                            "password": unquote(parts.password or "")}
    if parts.path.strip("/"):
        args["database"] = unquote(parts.path.strip("/"))
    query = _parameters(parts.query)
    if "unix_socket" in query:
        args["unix_socket"] = query["unix_socket"]
    return args | _tls(query)


DSN_PARAMETERS = ("unix_socket", "ssl_mode", "ssl_ca", "ssl_cert", "ssl_key")
SSL_MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")


def _parameters(query: str) -> dict[str, str]:
    """The DSN's ?parameters, each known and given once. Values are never quoted in a message
    (a password put there by mistake would show)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    found: dict[str, str] = {}
    for name, value in pairs:
        if name not in DSN_PARAMETERS:
            raise ConfigError(f"unknown parameter {one_line(name)!r} (jitgrant reads "
                              f"{', '.join(DSN_PARAMETERS)})")
        if name in found:
            raise ConfigError(f"parameter {name} is given twice")
        found[name] = value
    return found


def _tls(query: dict[str, str]) -> dict[str, Any]:
    """pymysql's TLS arguments for the MySQL client's ssl_mode. Without ssl_mode, ssl_ca means
    VERIFY_CA and ssl_cert/ssl_key REQUIRED; PREFERRED is pymysql's own default. An `ssl`
    context is passed only for the modes that require TLS: _connect then insists on it."""
    files: dict[str, str] = {k: query[k] for k in ("ssl_ca", "ssl_cert", "ssl_key") if k in query}
    default = "VERIFY_CA" if "ssl_ca" in files else "REQUIRED" if files else "PREFERRED"
    mode = query.get("ssl_mode", default).upper()
    if mode not in SSL_MODES:
        raise ConfigError(f"ssl_mode must be one of {', '.join(SSL_MODES)}")
    if mode in ("DISABLED", "PREFERRED") and files:
        raise ConfigError(f"ssl_ca, ssl_cert and ssl_key need ssl_mode REQUIRED, VERIFY_CA or "
                          f"VERIFY_IDENTITY, not {mode}")
    if mode == "DISABLED":
        return {"ssl_disabled": True}
    if mode == "PREFERRED":
        return {}
    return {"ssl": _tls_context(mode, files)}


def _tls_context(mode: str, files: dict[str, str]) -> ssl.SSLContext:
    if "ssl_key" in files and "ssl_cert" not in files:
        raise ConfigError("ssl_key needs ssl_cert")
    try:
        ctx = ssl.create_default_context(cafile=files.get("ssl_ca") or None)
        if "ssl_cert" in files:
            ctx.load_cert_chain(files["ssl_cert"], files.get("ssl_key") or None)
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        raise ConfigError("cannot read ssl_ca, ssl_cert or ssl_key (a missing file, or not "
                          "PEM)") from None
    ctx.check_hostname = mode == "VERIFY_IDENTITY"
    ctx.verify_mode = ssl.CERT_NONE if mode == "REQUIRED" else ssl.CERT_REQUIRED
    return ctx


_LOCK_HOLDER = """SELECT h.id, p.USER FROM (SELECT IS_USED_LOCK(%s) AS id) h
LEFT JOIN information_schema.PROCESSLIST p ON p.ID = h.id"""


def lock_name(target: Target) -> str:
    digest = hashlib.sha256(target.role_prefix.encode()).hexdigest()[:16]
    return f"jitgrant:{digest}"


@contextmanager
def _driver_errors(doing: str, hide: tuple[str, ...]) -> Iterator[None]:
    try:
        yield
    except pymysql.MySQLError as exc:
        raise TargetError(f"{doing}: {_one_line(exc, hide)}") from None


def _one_line(exc: BaseException, hide: tuple[str, ...]) -> str:
    """The driver's message on one line, the DSN's secrets masked."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    text = args[1] if len(args) >= 2 and isinstance(args[1], str) else str(exc)
    return scrubbed_line(text, hide, type(exc).__name__)


def _secrets(dsn: str) -> tuple[str, ...]:
    try:
        password = parse_dsn(dsn)["password"]
    except ConfigError:
        password = None
    return dsn_secrets(dsn, password)


def _where(args: dict[str, Any]) -> str:
    """The server, in jitgrant's words: drivers name it, or not, as their release has it."""
    return str(args.get("unix_socket") or f"{args['host']}:{args['port']}")


def _connect(dsn: str, target: Target) -> pymysql.connections.Connection[Any]:
    hide = _secrets(dsn)
    try:
        args = parse_dsn(dsn)
    except ConfigError as exc:
        raise TargetError(f"cannot connect: the DSN in {where(target, dsn)} is malformed: "
                          f"{exc}") from None
    # pymysql would send a str password as latin-1 (and fail on any other character); the
    # server hashes what the mysql client sends, the password's UTF-8 bytes.
    args["password"] = args["password"].encode("utf-8", "surrogatepass")
    tls = isinstance(args.get("ssl"), ssl.SSLContext)
    try:
        conn = pymysql.connect(**args, connect_timeout=10, autocommit=True,
                               charset="utf8mb4", read_timeout=600, write_timeout=600,
                               program_name="jitgrant")
    except pymysql.MySQLError as exc:
        if tls and exc.args and exc.args[0] == CR_SSL_CONNECTION_ERROR:
            raise TargetError(_NO_TLS.format(where=where(target, dsn))) from None
        raise TargetError(f"cannot connect to {_where(args)}: {_one_line(exc, hide)}") from None
    except (ValueError, OSError) as exc:  # a driver's own check, a certificate refused
        raise TargetError(f"cannot connect to {_where(args)}: {_one_line(exc, hide)}") from None
    with _driver_errors("preparing the session", hide), conn.cursor() as cur:
        # Known quoting rules and UTC for event times, whatever the server's defaults.
        cur.execute("SET SESSION sql_mode = %s, time_zone = '+00:00'", [SQL_MODE])
        if tls:
            _insist_on_tls(conn, cur, where(target, dsn))
    return conn


CR_SSL_CONNECTION_ERROR = 2026
_NO_TLS = ("cannot connect: the ssl_mode in {where} requires TLS, and the server offers none "
           "or the TLS handshake failed")


def _insist_on_tls(conn: pymysql.connections.Connection[Any], cur: Any, source: str) -> None:
    """Older pymysql releases go on in clear text when the server offers no TLS, whatever was
    asked: the session's cipher says what happened."""
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    row = cur.fetchone()
    if not row or not row[1]:
        conn.close()
        raise TargetError(_NO_TLS.format(where=source))


class MysqlSession:
    def __init__(self, target: Target, dsn: str) -> None:
        self.target = target
        self.hide = _secrets(dsn)  # masked in every message the driver gives
        self.conn = _connect(dsn, target)
        with _driver_errors("reading server information", self.hide), self.conn.cursor() as cur:
            cur.execute(_INFO + ", @@performance_schema")
            row = cur.fetchone()
        assert row is not None
        current, version, scheduler, database, performance_schema = row
        self.performance_schema = _true(performance_schema)
        self.current = str(current)
        user, _, host = self.current.rpartition("@")
        self.admin = account_key(user, host)
        self.admin_user = user
        self.version = str(version)
        self.flavor = "mariadb" if "mariadb" in self.version.lower() else "mysql"
        self.scheduler = str(scheduler).upper() in ("ON", "1")
        self.database = database
        self.queries = MARIADB if self.flavor == "mariadb" else MYSQL8

    def lock(self) -> str | None:
        name = lock_name(self.target)
        with _driver_errors("taking the lock", self.hide):
            # After a KILL the holder's lock goes when its thread ends: wait a little then.
            waits = iter((0, 5))
            return take_lock(lambda: self._scalar("SELECT GET_LOCK(%s, %s)", name,
                                                  next(waits, 5)) == 1,
                             lambda: self._lock_holders(name), self.admin_user,
                             self._end_connection)

    def _scalar(self, query: str, *params: object) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(query, list(params))
            row = cur.fetchone()
        return row[0] if row else None

    def _lock_holders(self, name: str) -> list[tuple[int, str]]:
        """The connection holding the lock and its user (PROCESS shows other users')."""
        with self.conn.cursor() as cur:
            cur.execute(_LOCK_HOLDER, [name])
            return [(int(pid), str(user or "")) for pid, user in cur.fetchall()
                    if pid is not None]

    def _end_connection(self, pid: int) -> bool:
        try:
            with self.conn.cursor() as cur:
                cur.execute("KILL CONNECTION %s", [pid])
        except pymysql.MySQLError as exc:
            return bool(exc.args and exc.args[0] == ER_NO_SUCH_THREAD)
        return True

    def inspect(self, groups: frozenset[str]) -> ActualState:
        with _driver_errors("reading the catalog", self.hide):
            return self._inspect(groups)

    def _query(self, query: str | None, params: dict[str, Any]) -> list[Any]:
        if query is None:
            return []
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    def _inspect(self, groups: frozenset[str]) -> ActualState:
        q = self.queries
        params = {"prefix": self.target.role_prefix,
                  "events": EVENT_PREFIX + self.target.role_prefix,
                  "groups": tuple(sorted(groups)) or ("",), "admin": self.admin_user}
        accounts = self._query(q.accounts, params)
        roles = self._query(q.roles, params)
        defaults = self._query(q.defaults, params)
        privileged = {(u, h) for u, h in self._query(q.privileges, params)}
        reach = self._query(q.groups, params) if groups else []
        sessions, opened, usage, counters = self._sessions(params)
        events = self._query(q.events, params)
        audit, audited = mysql_settings.audit_state(
            self._query(mysql_settings.AUDIT_VARIABLES, params))
        built = _accounts(accounts, roles, defaults, privileged, sessions, events,
                          self.flavor, audited)
        return ActualState(
            roles=MappingProxyType(built), existing_groups=frozenset(r[0] for r in reach),
            dangerous_groups=MappingProxyType(_dangerous_groups(reach)), admin=self.admin,
            admin_is_superuser=self._can_repair(), database=self.database or "",
            admin_user=self.admin_user,
            superusers=frozenset(name for name, role in built.items() if role.superuser),
            server_version=0, event_scheduler=self.scheduler, flavor=self.flavor,
            event_schema=self.database, server_audit=audit,
            grant_options=_by_first(self._query(_GRANT_OPTIONS, params) if groups else []),
            grants_made=_grants_made(self._query(_GRANTS_MADE, params)),
            open_sessions=opened, usage=usage, counters=counters, sampled=True)

    def _sessions(self, params: dict[str, Any]) -> mysql_usage.Read:
        """mysql_usage.read; when performance_schema cannot be read (no SELECT on it), read
        again without it: counters are never a reason to leave a revocation undone."""
        try:
            return mysql_usage.read(self._query, params, self.performance_schema)
        except pymysql.MySQLError:
            if not self.performance_schema or not self.conn.open:
                raise
        self.performance_schema = False
        return mysql_usage.read(self._query, params, False)

    def _can_repair(self) -> bool:
        """Whether the reconciler may revoke an administrator's privileges and reset its
        password: CREATE USER; on MySQL 8 also SYSTEM_USER, without which an account holding
        SYSTEM_USER (ALL PRIVILEGES grants it) cannot be altered. (MySQL 8: written to the
        MySQL 8 manual, not tested against a server.)"""
        user, _, host = self.current.rpartition("@")
        rows = self._query(_OWN_PRIVILEGES, {"grantee": f"{literal(user)}@{literal(host)}"})
        have = {str(r[0]).upper() for r in rows}
        needed = {"CREATE USER"} | ({"SYSTEM_USER"} if self.flavor == "mysql" else set())
        return needed <= have

    def execute(self, plan: TargetPlan, statements: Sequence[Statement],
                actual: ActualState) -> list[ActionResult]:
        """In phase order, each statement committing on its own. A failed statement ends its
        action: later steps would assume it had worked."""
        progress = Progress(plan, statements, autocommit=True)
        try:
            self._execute(plan, statements, progress)
        except ConnectionLost as exc:
            raise ConnectionLost(str(exc), progress.at_cut(str(exc))) from None
        except TargetError as exc:
            if self.conn.open:
                raise
            raise ConnectionLost(str(exc), progress.at_cut(str(exc))) from None
        return progress.results

    def _execute(self, plan: TargetPlan, statements: Sequence[Statement],
                 progress: Progress) -> None:
        results = progress.results
        for phase in PHASES:
            if phase == "sessions":  # looked up again now: in doubt from the first KILL
                progress.begin([s for s in statements
                                if s.phase == phase and not results[s.action].error], True)
                self._end_sessions(plan, results)
                progress.committed()
                continue
            for stmt in statements:
                if stmt.phase == phase and not results[stmt.action].error:
                    progress.begin([stmt], committing=True)  # each commits as it runs
                    self._run(stmt, results[stmt.action])
                    progress.committed()

    def _run(self, stmt: Statement, result: ActionResult) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute(stmt.sql)
        except pymysql.MySQLError as exc:
            if not self.conn.open:
                raise ConnectionLost(f"connection lost: {_one_line(exc, self.hide)}") from None
            if exc.args and exc.args[0] == ER_NO_SUCH_THREAD:
                return  # a connection to kill ended by itself meanwhile
            result.error = _one_line(exc, self.hide)
            return
        result.statements += 1

    def _end_sessions(self, plan: TargetPlan, results: list[ActionResult]) -> None:
        """Kill every connection of each locked account, by id, looked up now (one query for
        all of them): one could have opened since planning. Connections are matched by exact
        user name; the plan says when an account left alone shares it (kill_sessions)."""
        index_of = {}
        for index, action in enumerate(plan.actions):
            have = action.actual
            if (action.kind == "revoke" and have is not None and not have.is_role
                    and action.kill_sessions and not results[index].error):
                index_of[have.user] = index
        if not index_of:
            return
        query = mysql_usage.CONNECTIONS_PS if self.performance_schema \
            else mysql_usage.CONNECTIONS
        with _driver_errors("listing connections", self.hide), self.conn.cursor() as cur:
            cur.execute(query, {"users": tuple(sorted(index_of))})
            rows = cur.fetchall()
        for row in sorted(rows, key=lambda r: int(r[0])):
            if row[1] in index_of:  # the query matched case-insensitively; this is exact
                result = results[index_of[row[1]]]
                if self._kill_one(int(row[0]), result):
                    result.ended_sessions.append(mysql_usage.ended(row))

    def _kill_one(self, pid: int, result: ActionResult) -> bool:
        try:
            with self.conn.cursor() as cur:
                cur.execute("KILL CONNECTION %s", [pid])
        except pymysql.MySQLError as exc:
            if not self.conn.open:
                raise ConnectionLost(f"connection lost: {_one_line(exc, self.hide)}") from None
            if exc.args and exc.args[0] == ER_NO_SUCH_THREAD:
                return False  # it ended by itself meanwhile
            result.error = _one_line(exc, self.hide)
            return False
        result.statements += 1
        result.sessions_ended += 1
        return True

    def close(self) -> None:
        try:
            self.conn.close()
        except pymysql.MySQLError:
            pass


def _dangerous_groups(rows: list[Any]) -> dict[str, str]:
    """Group -> why an account granted it would administer the server: its own privileges
    first, else the first role (by name) it leads to that has them."""
    found: dict[str, str] = {}
    for group, role, administers, own in sorted(rows, key=lambda r: (r[0], r[1] != r[0], r[1])):
        if not (_true(administers) or _true(own)) or group in found:
            continue
        why = ("the reconciler's own account" if _true(own) else
               "an administrator (SUPER, CREATE USER or GRANT OPTION on *.*)")
        found[group] = f"is {why}" if role == group else f"leads to role {role}, which is {why}"
    return found


def _true(value: Any) -> bool:
    """JSON booleans come back as 'true' or '1' depending on the server version."""
    return str(value).lower() in ("true", "1")


def _unique_key(taken: dict[str, ActualRole], user: str, host: str) -> str:
    """account_key, unless another account already has it (a role beside the account of the
    same name, a user name containing @): one must never hide the other, or it would escape
    revocation and its drift would go unseen."""
    for key in (account_key(user, host), f"{user}@{host}"):
        if key not in taken:
            return key
    return f"{user!r}@{host!r}"  # two quoted strings: never ambiguous


def _accounts(accounts: list[Any], roles: list[Any], defaults: list[Any],
              privileged: set[tuple[str, str]], sessions: list[Any], events: list[Any],
              flavor: str, audited: frozenset[str] = frozenset()) -> dict[str, ActualRole]:
    granted: dict[tuple[str, str], set[str]] = {}
    admin: dict[tuple[str, str], set[str]] = {}
    for user, host, role, admin_option in roles:
        granted.setdefault((user, host), set()).add(role)
        if admin_option:
            admin.setdefault((user, host), set()).add(role)
    default: dict[tuple[str, str], set[str]] = {}
    for user, host, role in defaults:
        default.setdefault((user, host), set()).add(role)
    by_user: dict[str, list[int]] = {}
    for pid, user in sessions:
        by_user.setdefault(user, []).append(int(pid))
    fires: dict[str, list[tuple[str, datetime | None]]] = {}
    for schema, name, execute_at, zone in events:
        login = str(name)[len(EVENT_PREFIX):]
        when = execute_at.replace(tzinfo=timezone.utc) if execute_at and str(zone) in (
            "+00:00", "UTC") else None
        fires.setdefault(login, []).append((f"{schema}.{name}", when))
    built: dict[str, ActualRole] = {}
    # Accounts with host % first: they are the logins jitgrant manages and keep the plain name.
    for row in sorted(accounts, key=lambda r: (r[1] != "%" or _true(r[2]), r[0], r[1])):
        (user, host, is_role, plugin, auth, locked, max_conn, default_role, access,
         administers, *limits) = row
        key = _unique_key(built, user, host)
        if flavor == "mariadb":
            defaults_here = {default_role} if default_role else set()
        else:
            defaults_here = default.get((user, host), set())
        native = plugin == "mysql_native_password"
        mine = fires.get(user, []) if host == "%" else []
        built[key] = ActualRole(
            name=key, user=user, host=host, is_role=_true(is_role),
            verifier=auth if native and auth else None, verifier_known=True,
            locked=_true(locked), superuser=_true(administers),
            connection_limit=int(max_conn) if max_conn and int(max_conn) > 0 else None,
            settings=mysql_settings.account_limits(limits),
            audited=host == "%" and user in audited,  # jitgrant's logins have host %
            member_of=frozenset(granted.get((user, host), set())),
            admin_of=frozenset(admin.get((user, host), set())),
            default_roles=frozenset(defaults_here),
            direct_privileges=bool(access and int(access) != 0) or (user, host) in privileged,
            sessions=len(by_user.get(user, [])), session_ids=tuple(by_user.get(user, [])),
            backstop_at=mine[0][1] if mine else None,
            events=tuple(sorted(name for name, _ in mine)))
    return built


# -- standing access (read only) -------------------------------------------------------------

MARIADB_SUPER = 1 << 15  # SUPER in MariaDB's global_priv access bitmask
# Every account: outside the namespace, and administrators and never_touch inside it, which
# jitgrant leaves alone. (user, host, role, locked, SUPER, administers, in the namespace,
# password lifetime in days or NULL, password expired)
_STANDING_MARIADB = (
    "SELECT User, Host, JSON_VALUE(Priv, '$.is_role'), JSON_VALUE(Priv, '$.account_locked'), "
    f"CAST(JSON_VALUE(Priv, '$.access') AS UNSIGNED) & {MARIADB_SUPER} <> 0, "
    f"CAST(JSON_VALUE(Priv, '$.access') AS UNSIGNED) & {MARIADB_ADMIN_BITS} <> 0, "
    + _PREFIX.format(col="User") + ", JSON_VALUE(Priv, '$.password_lifetime'), "
    "JSON_VALUE(Priv, '$.password_last_changed') = 0 FROM mysql.global_priv")
_STANDING_MYSQL8 = (
    "SELECT User, Host, 'false', IF(account_locked = 'Y', 'true', 'false'), Super_priv = 'Y', "
    + " OR ".join(f"{c} = 'Y'" for c in MYSQL8_ADMIN_COLUMNS) + ", "
    + _PREFIX.format(col="User") + ", password_lifetime, password_expired = 'Y' "
    "FROM mysql.user")


def standing_logins(target: Target, dsn: str) -> list[tuple[str, bool, str]]:
    """Accounts that can log in for good: not roles and not locked, as (user@host, SUPER,
    why). A password lifetime or an expired password does not end access: the holder of the
    password sets a new one (an expired one from the sandbox session that MariaDB and MySQL
    give every client that says it can handle one, whatever disconnect_on_expired_password
    says). Outside the namespace, less the connecting account and never_touch; inside it, the
    accounts jitgrant leaves alone. Reads only."""
    conn = _connect(dsn, target)
    try:
        with _driver_errors("reading the accounts", _secrets(dsn)), conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), VERSION(), @@default_password_lifetime")
            row = cur.fetchone()
            assert row is not None
            current, version, default_lifetime = row
            mariadb = "mariadb" in str(version).lower()
            cur.execute(_STANDING_MARIADB if mariadb else _STANDING_MYSQL8,
                        {"prefix": target.role_prefix})
            accounts = list(cur.fetchall())
    finally:
        conn.close()
    admin_user, _, admin_host = str(current).rpartition("@")
    found = []
    for user, host, is_role, locked, sup, administers, inside, lifetime, expired in accounts:
        if (user, host) == (admin_user, admin_host) or _true(is_role) or _true(locked):
            continue
        kept = user in target.never_touch or account_key(user, host) in target.never_touch
        why = _password_why(lifetime, _true(expired), int(default_lifetime or 0))
        if _true(inside):
            left_alone = _left_alone(user, admin_user, _true(administers), kept)
            if left_alone is None:
                continue  # jitgrant's to manage: revoked when no grant maps to it
            why += f"; inside the namespace but {left_alone}: jitgrant leaves it alone"
        elif kept:
            continue
        found.append((f"{user}@{host}", _true(sup), why))
    return sorted(found)


def _left_alone(user: str, admin_user: str, administers: bool, kept: bool) -> str | None:
    """Why plan.protection leaves an account in the namespace alone, or None."""
    if kept:
        return "in never_touch"
    if user == admin_user:
        return "sharing its user name with the reconciler's account"
    if administers:
        return "an administrator (SUPER, CREATE USER or GRANT OPTION on *.*)"
    return None


def _password_why(lifetime: Any, expired: bool, default_lifetime: int) -> str:
    days = int(lifetime) if lifetime is not None and int(lifetime) >= 0 else default_lifetime
    if expired:
        return "unlocked; its password has expired, but the old one still logs in to set a new one"
    if days > 0:
        return f"unlocked; password lifetime {days} days, but its holder sets the next one"
    return "unlocked, no password expiry"


# -- what `jitgrant doctor` reads (read only) --------------------------------------------------

_DOCTOR_GLOBAL = ("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
                  "WHERE GRANTEE = %(grantee)s")
# Database-level privileges; TABLE_SCHEMA is the GRANT's pattern, `\_` for a literal _.
_DOCTOR_SCHEMA = ("SELECT REPLACE(TABLE_SCHEMA, '\\\\_', '_'), PRIVILEGE_TYPE "
                  "FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %(grantee)s")
# The roles granted to the reconciler's account, and whether it may grant them on. GRANTEE reads
# user@host unquoted on MariaDB; MySQL 8 splits it (written to the MySQL 8 manual, untested).
_DOCTOR_ROLES_MARIADB = ("SELECT ROLE_NAME, IS_GRANTABLE = 'YES' FROM "
                         "information_schema.APPLICABLE_ROLES WHERE GRANTEE = %(plain)s")
_DOCTOR_ROLES_MYSQL8 = ("SELECT ROLE_NAME, IS_GRANTABLE = 'YES' FROM "
                        "information_schema.APPLICABLE_ROLES "
                        "WHERE GRANTEE = %(user)s AND GRANTEE_HOST = %(host)s")


def doctor_facts(target: Target, dsn: str, groups: frozenset[str]) -> dict[str, Any]:
    """What `jitgrant doctor` judges, read in one short session: the account's privileges
    (global, on databases, the roles it may grant), which group roles exist, the event
    scheduler, and the target's lock, tried without waiting and released at once. Nothing is
    created or granted. Raises TargetError when the server cannot be reached."""
    conn = _connect(dsn, target)
    hide = _secrets(dsn)
    try:
        with _driver_errors("reading the privileges", hide), conn.cursor() as cur:
            return _doctor_facts(cur, target, groups, "ssl" in parse_dsn(dsn))
    finally:
        conn.close()


def _doctor_facts(cur: Any, target: Target, groups: frozenset[str],
                  tls_required: bool) -> dict[str, Any]:
    cur.execute(_INFO + ", (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                "WHERE VARIABLE_NAME = 'Ssl_cipher')")
    current, version, scheduler, database, cipher = cur.fetchone()
    user, _, host = str(current).rpartition("@")
    flavor = "mariadb" if "mariadb" in str(version).lower() else "mysql"
    queries = MARIADB if flavor == "mariadb" else MYSQL8

    def rows(query: str, params: dict[str, Any]) -> list[Any]:
        cur.execute(query, params)
        return list(cur.fetchall())

    mine = {"grantee": f"{literal(user)}@{literal(host)}", "plain": f"{user}@{host}",
            "user": user, "host": host}
    have = {str(r[0]).upper() for r in rows(_DOCTOR_GLOBAL, mine)}
    schema = {(str(s), str(p).upper()) for s, p in rows(_DOCTOR_SCHEMA, mine)}
    # Which groups exist is read from the mysql database: unknown (None) when it may not.
    existing = ({str(r[0]) for r in rows(queries.groups, {"groups": tuple(sorted(groups)),
                                                          "admin": user})} if groups else set()
                ) if "SELECT" in have or ("mysql", "SELECT") in schema else None
    roles = rows(_DOCTOR_ROLES_MARIADB if flavor == "mariadb" else _DOCTOR_ROLES_MYSQL8, mine)
    return {
        "user": user, "host": host, "flavor": flavor, "database": database,
        "scheduler": str(scheduler).upper() in ("ON", "1"), "tls": bool(cipher),
        "tls_required": tls_required,
        "global": have, "schema": schema,
        "roles": {str(role): bool(grantable) for role, grantable in roles},
        "groups": sorted(groups), "existing_groups": existing,
        "lock_holders": _try_lock(cur, target)}


def _try_lock(cur: Any, target: Target) -> list[tuple[int, str]] | None:
    """None when the target's lock is free: taken without waiting and released at once.
    Otherwise who holds it, as (connection, user)."""
    name = lock_name(target)
    cur.execute("SELECT GET_LOCK(%s, 0)", [name])
    row = cur.fetchone()
    if row and row[0] == 1:
        cur.execute("SELECT RELEASE_LOCK(%s)", [name])
        return None
    cur.execute(_LOCK_HOLDER, [name])
    return [(int(pid), str(u or "")) for pid, u in cur.fetchall() if pid is not None]
