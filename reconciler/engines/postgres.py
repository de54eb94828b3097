"""PostgreSQL: every statement jitgrant sends to a PostgreSQL server is in this file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..dsn import where
from ..errors import ConnectionLost, TargetError
from ..model import SERVER_POWER_ROLES, ActualRole, ActualState, DesiredLogin, Target
from ..plan import Action, TargetPlan, marker_comment, owned_object_databases, reassign_target
from ..planted import describe, dollar_quote
from ..timeutil import INFINITY, NEG_INFINITY
from . import pg_settings, pg_usage
from .base import (PHASES, ActionResult, Progress, Statement, dsn_secrets, render_plan,
                   scrubbed_line, take_lock)

ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
MASK = "'********'"

# Python's datetime ends with year 9999 and PostgreSQL's timestamps do not (VALID UNTIL
# '294276-12-31'): a later expiry reads as infinity, so it is drift like any other and never
# fails the catalog read. A day short of year 10000, since psycopg converts to the session's
# time zone, which may be ahead of UTC.
FAR_FUTURE = "'9999-12-31 00:00:00+00'::timestamptz"

_INFO = """SELECT current_user, current_database(),
  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  current_setting('server_version_num')::int, """ + pg_usage.STATEMENTS_SCHEMA  # noqa: S608 - constants
_ROLES = """SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
  r.rolreplication, r.rolbypassrls, r.rolinherit,
  CASE WHEN isfinite(r.rolvaliduntil) AND r.rolvaliduntil < {far} THEN r.rolvaliduntil END,
  r.rolvaliduntil >= {far}, r.rolvaliduntil = '-infinity',
  r.rolconnlimit, {password}, shobj_description(r.oid, 'pg_authid'), r.rolconfig
FROM pg_roles r {join}
WHERE starts_with(r.rolname, %(prefix)s)"""
_MEMBERS = """SELECT m.rolname, g.rolname, coalesce(gr.rolname, ''), am.admin_option
FROM pg_auth_members am
JOIN pg_roles m ON m.oid = am.member
JOIN pg_roles g ON g.oid = am.roleid
LEFT JOIN pg_roles gr ON gr.oid = am.grantor
WHERE starts_with(m.rolname, %(prefix)s) OR starts_with(g.rolname, %(prefix)s)"""
# The group roles that exist, each with itself and every role it leads to through
# memberships (any edge: SET, INHERIT or an ADMIN option that can grant itself SET) that would
# make its members superuser-equivalent: attributes, a server role among %(power)s, or the
# reconciler's own role. PostgreSQL refuses circular memberships; UNION stops anyway.
_GROUPS = """WITH RECURSIVE reach(grp, role) AS (
  SELECT oid, oid FROM pg_roles WHERE rolname = ANY(%(groups)s)
  UNION
  SELECT r.grp, am.roleid FROM reach r JOIN pg_auth_members am ON am.member = r.role)
SELECT g.rolname, x.rolname, x.rolsuper, x.rolcreaterole, x.rolbypassrls, x.rolreplication,
  x.rolname = current_user, x.rolname = ANY(%(power)s)
FROM reach r JOIN pg_roles g ON g.oid = r.grp JOIN pg_roles x ON x.oid = r.role
WHERE r.grp = r.role OR x.rolsuper OR x.rolcreaterole OR x.rolbypassrls OR x.rolreplication
  OR x.rolname = current_user OR x.rolname = ANY(%(power)s)"""
POWER_ROLES = sorted(name for name in SERVER_POWER_ROLES if name.startswith("pg_"))
_DEPENDS = """SELECT r.rolname, coalesce(d.datname, '')
FROM pg_shdepend s
JOIN pg_roles r ON s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid
LEFT JOIN pg_database d ON d.oid = s.dbid
WHERE starts_with(r.rolname, %(prefix)s) AND s.deptype <> 'p'
GROUP BY 1, 2"""
_OWNERS = "SELECT datname, pg_get_userbyid(datdba), oid FROM pg_database"
# ACL entries WITH GRANT OPTION held by the given roles, in the current database.
_GRANT_OPTIONS = """SELECT DISTINCT g.rolname, o.label || ' ' || o.name FROM (
  SELECT 'table' AS label, c.oid::regclass::text AS name, c.relacl AS acl FROM pg_class c
  UNION ALL SELECT 'columns of', c.oid::regclass::text, a.attacl
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE a.attacl IS NOT NULL
  UNION ALL SELECT 'routine', p.oid::regprocedure::text, p.proacl FROM pg_proc p
  UNION ALL SELECT 'schema', quote_ident(n.nspname), n.nspacl FROM pg_namespace n
  UNION ALL SELECT 'type', t.oid::regtype::text, t.typacl FROM pg_type t
  UNION ALL SELECT 'large object', l.oid::text, l.lomacl FROM pg_largeobject_metadata l
  UNION ALL SELECT 'database', quote_ident(d.datname), d.datacl FROM pg_database d
  UNION ALL SELECT 'foreign server', quote_ident(s.srvname), s.srvacl FROM pg_foreign_server s
) AS o, aclexplode(o.acl) AS e, pg_roles g
WHERE o.acl IS NOT NULL AND e.is_grantable AND g.oid = e.grantee AND g.rolname = ANY(%(groups)s)
ORDER BY 1, 2"""
_TERMINATE = pg_usage.TERMINATE  # (login, ended, and the session: see pg_usage.ended)
# After pg_terminate_backend: a session still there did not end within its 5 seconds (a
# stopped or stuck backend), or started just before the lock-out took effect.
_SURVIVORS = """SELECT usename, pid FROM pg_stat_activity
WHERE usename = ANY(%s) AND pid <> pg_backend_pid() ORDER BY 1, 2"""
# Who holds the advisory lock of a 64-bit key: pg_locks shows it as classid (high 32 bits),
# objid (low 32 bits) and objsubid 1, in the database it was taken in.
_LOCK_HOLDERS = """SELECT l.pid, coalesce(a.usename, '') FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %(high)s::oid AND l.objid = %(low)s::oid AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
_SUPERUSERS = "SELECT rolname FROM pg_roles WHERE rolsuper"
# The server would log a failing statement (log_min_error_statement), every statement
# (log_statement = all, or ddl: CREATE/ALTER ROLE ... PASSWORD) or a slow one in full.
# The session's set-up, in one round trip: catalog names resolved (and printed) against
# pg_catalog only, and the three parameters quieted where this role may set them.
_SETUP = "SELECT set_config('search_path', 'pg_catalog, pg_temp', false)"
_SETUP_SUPERUSER = _SETUP + """, set_config('log_statement', 'none', false),
  set_config('log_min_error_statement', 'panic', false),
  set_config('log_min_duration_statement', '-1', false)"""
_SETUP_GRANTED = """SELECT set_config('search_path', 'pg_catalog, pg_temp', false),
  (SELECT count(set_config(p, v, false)) FROM (VALUES ('log_statement', 'none'),
    ('log_min_error_statement', 'panic'), ('log_min_duration_statement', '-1')) AS q(p, v)
   WHERE has_parameter_privilege(p, 'SET'))"""
_DB_SETTINGS = """SELECT r.rolname, d.datname FROM pg_db_role_setting s
JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase
WHERE starts_with(r.rolname, %(prefix)s)"""


def lock_key(target: Target) -> int:
    """A 64-bit advisory lock key for the namespace, the same for every run on this server."""
    digest = hashlib.sha256(f"jitgrant:{target.role_prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresEngine:
    name = "postgres"

    def connect(self, target: Target, dsn: str) -> PostgresSession:
        return PostgresSession(target, dsn)

    def render(self, plan: TargetPlan, actual: ActualState) -> list[Statement]:
        return render_plan(plan, actual, _render_action)


# -- rendering (pure) ------------------------------------------------------------------------
# psycopg quotes every identifier and value (sql.Identifier, sql.Literal); the statements are
# then assembled from those quoted pieces and constant SQL, which is ten times faster than
# sql.Composed.format at 10,000 logins.


@lru_cache(maxsize=65536)
def ident(name: str) -> str:
    """An identifier, quoted by psycopg (group roles repeat in every login: quote them once)."""
    return sql.Identifier(name).as_string(None)


@lru_cache(maxsize=65536, typed=True)  # typed: 1 and True must not share an entry
def lit(value: str | int) -> str:
    """A value as a literal, escaped by psycopg (utility statements take no bind parameters)."""
    return sql.Literal(value).as_string(None)


def _stmt(index: int, phase: str, text: str, shown: str | None = None,
          database: str | None = None) -> Statement:
    return Statement(index, phase, text, text if shown is None else shown, database)


def _render_action(index: int, action: Action, target: Target,
                   actual: ActualState) -> list[Statement]:
    if action.kind == "create":
        return _render_create(index, action)
    if action.kind == "update":
        return _render_update(index, action, actual)
    return _render_revoke(index, action, target, actual)


def _password(verifier: str | None) -> tuple[str, str]:
    if verifier is None:
        return "PASSWORD NULL", "PASSWORD NULL"
    return "PASSWORD " + lit(verifier), "PASSWORD " + MASK


def _limit(value: int | None) -> str:
    return "CONNECTION LIMIT " + lit(-1 if value is None else int(value))


def _until(value: datetime) -> str:
    return "VALID UNTIL " + lit(value.isoformat())


def _grant_roles(roles: tuple[str, ...], role: str) -> str:
    return "GRANT " + _role_list(roles) + " TO " + role


@lru_cache(maxsize=1024)
def _role_list(roles: tuple[str, ...]) -> str:
    return ", ".join(ident(r) for r in roles)


def _comment(role: str, want: DesiredLogin, target: str) -> str:
    return "COMMENT ON ROLE " + role + " IS " + lit(marker_comment(want, target))


def _render_create(index: int, action: Action) -> list[Statement]:
    want = action.desired
    assert want is not None
    role = ident(want.name)
    secret, masked = _password(want.verifier)
    head = "CREATE ROLE " + role + " WITH " + ATTRIBUTES + " "
    tail = " " + _limit(want.connection_limit) + " " + _until(want.expires)
    out = [_stmt(index, "main", head + secret + tail, head + masked + tail)]
    if want.roles:
        out.append(_stmt(index, "main", _grant_roles(want.roles, role)))
    out += [_stmt(index, "main", text)
            for text in pg_settings.settings_sql(role, want.settings, (), want.settings)]
    out.append(_stmt(index, "main", _comment(role, want, action.target)))
    return out


def _render_update(index: int, action: Action, actual: ActualState) -> list[Statement]:
    want, have, ch = action.desired, action.actual, action.changes
    assert want is not None and have is not None
    role = ident(want.name)
    options: list[str] = _attribute_fixes(have) if ch.attributes else []
    if ch.connection_limit:
        options.append(_limit(want.connection_limit))
    if ch.valid_until:
        options.append(_until(want.expires))
    shown = list(options)
    if ch.password:
        secret, masked = _password(want.verifier)
        options.append(secret)
        shown.append(masked)
    out = []
    if options:
        head = "ALTER ROLE " + role + " WITH "
        out.append(_stmt(index, "main", head + " ".join(options), head + " ".join(shown)))
    if ch.reset_config:
        if have.has_config and not have.settings:
            out.append(_stmt(index, "main", "ALTER ROLE " + role + " RESET ALL"))
        out += [_stmt(index, "main", "ALTER ROLE " + role + " IN DATABASE " + ident(database)
                      + " RESET ALL") for database in have.config_databases]
    if ch.set_settings or ch.reset_settings:
        out += [_stmt(index, "main", text) for text in pg_settings.settings_sql(
            role, ch.set_settings, ch.reset_settings, want.settings)]
    if ch.grant_roles:
        out.append(_stmt(index, "main", _grant_roles(ch.grant_roles, role)))
    for group in ch.revoke_roles:
        out.extend(_revoke_membership(index, group, want.name, have.member_of_grants, actual))
    for member in ch.revoke_members:
        out.extend(_revoke_membership(index, want.name, member, have.members_grants, actual))
    for group in ch.revoke_admin:
        out.append(_stmt(index, "main", "REVOKE ADMIN OPTION FOR " + ident(group) + " FROM "
                         + role))
    if ch.comment:
        out.append(_stmt(index, "main", _comment(role, want, action.target)))
    return out


def _attribute_fixes(have: ActualRole) -> list[str]:
    """Only the attributes that are wrong: a CREATEROLE reconciler may not even mention
    REPLICATION or BYPASSRLS unless it has them."""
    wrong = [(not have.can_login, "LOGIN"), (have.superuser, "NOSUPERUSER"),
             (have.createdb, "NOCREATEDB"), (have.createrole, "NOCREATEROLE"),
             (have.replication, "NOREPLICATION"), (have.bypassrls, "NOBYPASSRLS"),
             (not have.inherit, "INHERIT")]
    return [word for bad, word in wrong if bad]


def _revoke_membership(index: int, group: str, member: str,
                       grants: tuple[tuple[str, str], ...], actual: ActualState,
                       phase: str = "main") -> list[Statement]:
    """REVOKE group FROM member; on 16+ once per grantor, since each grant is its own row."""
    base = "REVOKE " + ident(group) + " FROM " + ident(member)
    grantors = sorted({grantor for name, grantor in grants if name in (group, member) and grantor})
    if actual.server_version < 160000 or not grantors:
        return [_stmt(index, phase, base)]
    return [_stmt(index, phase, base + " GRANTED BY " + ident(g)) for g in grantors]


def terminate_sql(login: str) -> str:
    return ("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = "  # noqa: S608 - a psycopg literal
            + lit(login) + " AND pid <> pg_backend_pid()")


def _render_revoke(index: int, action: Action, target: Target,
                   actual: ActualState) -> list[Statement]:
    """Lock out (no login, expired, committed at once), end sessions, strip memberships in both
    directions, move objects database by database, drop. Stopped anywhere, what is left
    cannot be used; a held action stops after the strip."""
    have = action.actual
    assert have is not None
    role = ident(have.name)
    out = [_stmt(index, "lockout", "ALTER ROLE " + role + " WITH NOLOGIN VALID UNTIL "
                 + lit("-infinity")),
           _stmt(index, "sessions", terminate_sql(have.name))]
    if not action.hold:
        out += _disarm(index, have.name, owned_object_databases(have, actual), actual)
    for group in sorted(have.member_of):
        out += _revoke_membership(index, group, have.name, have.member_of_grants, actual,
                                  "strip")
    for member in sorted(have.members - {actual.admin}):
        out += _revoke_membership(index, have.name, member, have.members_grants, actual,
                                  "strip")
    if action.hold:
        return out
    for database in owned_object_databases(have, actual):
        owner = reassign_target(target, actual, database, have.name)
        phase = "main" if database == actual.database else "objects"
        where = None if phase == "main" else database
        out.append(_stmt(index, phase, "REASSIGN OWNED BY " + role + " TO " + ident(owner),
                         database=where))
        out.append(_stmt(index, phase, "DROP OWNED BY " + role, database=where))
    out.append(_stmt(index, "main", "DROP ROLE " + role))
    return out


# -- what a revoked login created: nobody but its new owner may use it -----------------------

# Every object `{who}` (an array of role oids) owns in the current database that carries
# privileges: the GRANT keyword for its kind, a label for the audit, its name as the server
# quotes it, SECURITY DEFINER, and who besides the owner holds privileges on it (a NULL ACL is
# the kind's default: PUBLIC's EXECUTE on routines and USAGE on types). Column privileges
# count as the table's. Array and multirange types and the row types of tables take their
# privileges from another object, so they are not listed. The names are read with
# search_path = pg_catalog, pg_temp: fully qualified and quoted by the server.
_PLANTED = """SELECT kind, label, name, secdef, ARRAY(
    SELECT DISTINCT CASE WHEN e.grantee = 0 THEN 'PUBLIC'
      ELSE quote_ident(pg_get_userbyid(e.grantee)) END
    FROM aclexplode(acl) AS e WHERE e.grantee <> owner ORDER BY 1) AS grantees,
  pg_get_userbyid(owner) AS login
FROM (
  SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
    CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
      WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE 'partitioned table' END
      AS label,
    c.oid::regclass::text AS name, false AS secdef, c.relowner AS owner,
    coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char",
                                  c.relowner))
      || coalesce((SELECT array_agg(i) FROM pg_attribute a, unnest(a.attacl) AS i
                   WHERE a.attrelid = c.oid), '{{}}') AS acl
  FROM pg_class c WHERE c.relowner = ANY({who}) AND c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p')
  UNION ALL
  SELECT 'ROUTINE', CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
      ELSE 'function' END, p.oid::regprocedure::text, p.prosecdef, p.proowner,
    coalesce(p.proacl, acldefault('f', p.proowner))
  FROM pg_proc p WHERE p.proowner = ANY({who})
  UNION ALL
  SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
    CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, t.oid::regtype::text, false,
    t.typowner, coalesce(t.typacl, acldefault('T', t.typowner))
  FROM pg_type t WHERE t.typowner = ANY({who}) AND t.typtype <> 'm'
    AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
    AND (t.typrelid = 0 OR EXISTS (SELECT FROM pg_class r
                                   WHERE r.oid = t.typrelid AND r.relkind = 'c'))
  UNION ALL
  SELECT 'SCHEMA', 'schema', quote_ident(n.nspname), false, n.nspowner,
    coalesce(n.nspacl, acldefault('n', n.nspowner))
  FROM pg_namespace n WHERE n.nspowner = ANY({who})
  UNION ALL
  SELECT 'LARGE OBJECT', 'large object', l.oid::text, false, l.lomowner,
    coalesce(l.lomacl, acldefault('L', l.lomowner))
  FROM pg_largeobject_metadata l WHERE l.lomowner = ANY({who})
  UNION ALL
  SELECT 'FOREIGN SERVER', 'foreign server', quote_ident(s.srvname), false, s.srvowner,
    coalesce(s.srvacl, acldefault('S', s.srvowner))
  FROM pg_foreign_server s WHERE s.srvowner = ANY({who})
) AS planted ORDER BY login, label, name"""

# Before REASSIGN OWNED, in the same transaction: every privilege anyone but the login holds
# on the login's objects is revoked (PUBLIC always; CASCADE takes grants made with a grant
# option along), and SECURITY DEFINER routines become SECURITY INVOKER. REASSIGN OWNED keeps
# ACLs (the login's grants then read as the new owner's), so without this a view reading with
# the new owner's rights, a PUBLIC grant or a definer function would outlive the login. The
# login is locked out and its sessions ended by now, so the list cannot grow meanwhile. A DO
# block, not statements rendered from a catalog read, so the plan shows exactly what runs.
_NEUTRALIZE = """
DECLARE
  who oid := (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {login});
  path text := pg_catalog.current_setting('search_path');
  obj record;
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  FOR obj IN {planted} LOOP
    EXECUTE format('REVOKE ALL ON %s %s FROM %s CASCADE', obj.kind, obj.name,
      array_to_string(ARRAY(SELECT DISTINCT unnest(ARRAY['PUBLIC'] || obj.grantees)), ', '));
    IF obj.secdef THEN
      EXECUTE format('ALTER ROUTINE %s SECURITY INVOKER', obj.name);
    END IF;
  END LOOP;
  PERFORM pg_catalog.set_config('search_path', path, true);
END
"""
_LIST_PLANTED = _PLANTED.format(
    who="ARRAY(SELECT oid FROM pg_roles WHERE rolname = ANY(%(logins)s))")


def _disarm(index: int, login: str, databases: list[str],
            actual: ActualState) -> list[Statement]:
    """Phase disarm, before the strip: the DO block in every database where the login owns
    something. A reconciler without superuser names the objects with the login's privileges,
    which reach their schemas only while the login is still in its groups; the same
    privileges later serve REASSIGN/DROP OWNED. The membership ends with the role."""
    if not databases:
        return []
    out = []
    if not actual.admin_is_superuser:
        out.append(_stmt(index, "disarm", _self_grant(ident(login), actual)))
    return out + [_stmt(index, "disarm", disarm_sql(login),
                        database=None if database == actual.database else database)
                  for database in databases]


def disarm_sql(login: str) -> str:
    """The DO block that leaves `login`'s objects in this database usable by their owner only."""
    body = _NEUTRALIZE.format(login=lit(login), planted=_PLANTED.format(who="ARRAY[who]"))
    return "DO " + dollar_quote(body)


def _self_grant(role: str, actual: ActualState) -> str:
    """The reconciler made a member of the login. Before 16 a CREATEROLE role may grant
    itself any non-superuser role, and a membership there always inherits (WITH INHERIT and
    SET are 16+ syntax)."""
    grant = "GRANT " + role + " TO " + ident(actual.admin)
    return grant + " WITH INHERIT TRUE, SET FALSE" if actual.server_version >= 160000 else grant


# -- the session (I/O) -----------------------------------------------------------------------

CHUNK = 500  # statements per round trip on the fast path
# Actions per transaction. Each holds a lock or two on its role until the commit, and the
# server's lock table is shared by every session: max_locks_per_transaction x (connections +
# workers), some 7,800 slots by default. One transaction of 12,700 new roles already exhausts
# it ("out of shared memory"), so a target's changes commit in transactions of this many.
TX_ACTIONS = 1000
# A login's own session can hold its pg_authid row (ALTER ROLE CURRENT_USER PASSWORD in a
# transaction left open), and the lock-out would wait on it until lock_timeout, run after run.
# So the lock-out waits briefly, then ends the sessions of the logins it locks out and tries
# again, a few times (a session may log in again before the lock-out commits).
LOCKOUT_WAIT = b"SET LOCAL lock_timeout = '2s'"
LOCKOUT_TRIES = 3


@contextmanager
def _driver_errors(doing: str, hide: tuple[str, ...]) -> Iterator[None]:
    """A driver error is the target's failure, reported in one line; it never stops others."""
    try:
        yield
    except psycopg.Error as exc:
        raise TargetError(f"{doing}: {_one_line(exc, hide)}") from None


class PostgresSession:
    def __init__(self, target: Target, dsn: str) -> None:
        self.target = target
        self.dsn = dsn
        self.hide = _secrets(dsn)  # masked in every message the driver gives
        self.conn = _connect(dsn, target)
        with _driver_errors("reading server information", self.hide):
            row = self.conn.execute(_INFO).fetchone()
        assert row is not None
        self.admin, self.database, self.superuser, self.version, self.statements = row
        self._quiet_log()
        self._kinds: dict[int, str] = {}
        self._logins: dict[int, str] = {}
        self._survivors: dict[int, list[int]] = {}  # action -> pids that did not end
        self._datnames: dict[int, str] = {}  # database oid -> name, from the catalog read
        self._progress: Progress  # set by execute

    def _quiet_log(self) -> None:
        """Statements that carry verifiers stay out of the server log where this role may say
        so: a superuser, or on 15+ one granted SET on these parameters. Otherwise the server
        logs as it is set up to (no verifier shares a failing query string with another
        login's statements, see query_strings)."""
        setup = (_SETUP_SUPERUSER if self.superuser
                 else _SETUP_GRANTED if self.version >= 150000 else _SETUP)
        with _driver_errors("preparing the session", self.hide):
            self.conn.execute(setup)

    def lock(self) -> str | None:
        key = lock_key(self.target)
        with _driver_errors("taking the lock", self.hide):
            return take_lock(lambda: self._scalar("SELECT pg_try_advisory_lock(%s)", key),
                             lambda: self._lock_holders(key), self.admin, self._end_session)

    def _scalar(self, query: str, *params: object) -> bool:
        row = self.conn.execute(query, list(params)).fetchone()
        return bool(row and row[0])

    def _lock_holders(self, key: int) -> list[tuple[int, str]]:
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        rows = self.conn.execute(_LOCK_HOLDERS, {"high": unsigned >> 32,
                                                 "low": unsigned & 0xFFFFFFFF}).fetchall()
        return [(int(pid), str(role)) for pid, role in rows]

    def _end_session(self, pid: int) -> bool:
        """pg_terminate_backend needs pg_signal_backend (never for a superuser's session)."""
        try:
            return self._scalar("SELECT pg_terminate_backend(%s, 5000)", pid)
        except psycopg.Error:
            return False

    def inspect(self, groups: frozenset[str]) -> ActualState:
        with _driver_errors("reading the catalog", self.hide):
            return self._inspect(groups)

    def _inspect(self, groups: frozenset[str]) -> ActualState:
        """One round trip: the catalog queries sent together in a pipeline. When reading
        pg_stat_statements fails (its privileges taken away, say), the read is made again
        without it: counters are never a reason to leave a revocation undone."""
        try:
            return self._read_catalog(groups, self.statements)
        except psycopg.Error:
            if self.statements is None or self.conn.closed or self.conn.broken:
                raise
        self.statements = None
        return self._read_catalog(groups, None)

    def _read_catalog(self, groups: frozenset[str], statements: str | None) -> ActualState:
        prefix = {"prefix": self.target.role_prefix}
        password = "a.rolpassword" if self.superuser else "NULL"
        join = "JOIN pg_authid a ON a.oid = r.oid" if self.superuser else ""
        queries: list[tuple[str, dict[str, Any] | None]] = [
            (_ROLES.format(password=password, join=join, far=FAR_FUTURE),  # noqa: S608
             prefix),  # constants only
            (_MEMBERS, prefix), (_GROUPS, {"groups": sorted(groups), "power": POWER_ROLES}),
            (_DEPENDS, prefix),
            (_OWNERS, None), pg_usage.sessions_query(self.target.role_prefix),
            (_SUPERUSERS, None), (_DB_SETTINGS, prefix),
            (_GRANT_OPTIONS, {"groups": sorted(groups)}),
            (pg_settings.parameters_query(self.version), None)]
        if statements is not None:
            queries.append(pg_usage.calls_query(statements, self.target.role_prefix))
        with self.conn.pipeline():
            cursors = [self.conn.cursor() for _ in queries]
            for cur, (query, params) in zip(cursors, queries, strict=True):
                cur.execute(query, params)
        *rows, grant_options, settable = (c.fetchall() for c in cursors[:10])
        calls = cursors[10].fetchall() if statements is not None else None
        opened, counts = pg_usage.open_sessions(rows[5])
        rows[5] = list(counts.items())
        self._datnames = {int(oid): str(name) for name, _, oid in rows[4]}
        rows[4] = [(name, owner) for name, owner, _ in rows[4]]
        return replace(self._state(*rows), grant_options=_grant_options(grant_options),
                       parameters=pg_settings.parameters(settable),
                       open_sessions=opened, usage=pg_usage.usage(counts, calls),
                       counters=("calls",) if calls is not None else (), sampled=True)

    def _state(self, roles: list[Any], members: list[Any], groups: list[Any], depends: list[Any],
               owners: list[Any], sessions: list[Any], supers: list[Any],
               db_settings: list[Any]) -> ActualState:
        member_of: dict[str, list[tuple[str, str]]] = {}
        has_members: dict[str, list[tuple[str, str]]] = {}
        admin_of: dict[str, set[str]] = {}
        for member, group, grantor, admin_option in members:
            member_of.setdefault(member, []).append((group, grantor))
            has_members.setdefault(group, []).append((member, grantor))
            if admin_option:
                admin_of.setdefault(member, set()).add(group)
        deps: dict[str, list[str]] = {}
        for name, database in depends:
            deps.setdefault(name, []).append(database)
        per_db: dict[str, list[str]] = {}
        for name, database in db_settings:
            per_db.setdefault(name, []).append(database)
        counts = dict(sessions)
        built = {row[0]: _role(row, member_of.get(row[0], []), has_members.get(row[0], []),
                               deps.get(row[0], []), counts.get(row[0], 0), self.superuser,
                               admin_of.get(row[0], set()), per_db.get(row[0], []))
                 for row in roles}
        return ActualState(
            roles=MappingProxyType(built), existing_groups=frozenset(r[0] for r in groups),
            admin=self.admin, admin_is_superuser=bool(self.superuser), database=self.database,
            database_owners=MappingProxyType(dict(owners)), server_version=self.version,
            superusers=frozenset(r[0] for r in supers),
            dangerous_groups=MappingProxyType(_dangerous_groups(groups)))

    def execute(self, plan: TargetPlan, statements: Sequence[Statement],
                actual: ActualState) -> list[ActionResult]:
        self._progress = Progress(plan, statements)
        with _driver_errors("applying", self.hide):
            try:
                return self._execute(plan, statements, actual)
            except ConnectionLost as exc:
                raise ConnectionLost(str(exc), self._progress.at_cut(str(exc))) from None
            except psycopg.Error as exc:
                if not (self.conn.closed or self.conn.broken):
                    raise
                lost = f"connection lost: {_one_line(exc, self.hide)}"
                raise ConnectionLost(lost, self._progress.at_cut(lost)) from None

    @contextmanager
    def _tx(self, conn: psycopg.Connection[Any], stmts: list[Statement]) -> Iterator[None]:
        """The outermost transaction of these statements, kept track of: a connection lost
        before the block ends rolls them back; one lost in the COMMIT leaves them in doubt."""
        self._progress.begin(stmts)
        try:
            with conn.transaction():
                yield
                self._progress.committing = True
        except psycopg.Error as exc:
            self._alive(conn, exc)
            raise
        self._progress.committed()

    def _execute(self, plan: TargetPlan, statements: Sequence[Statement],
                 actual: ActualState) -> list[ActionResult]:
        results = self._progress.results
        self._kinds = {index: action.kind for index, action in enumerate(plan.actions)}
        self._logins = {index: action.login for index, action in enumerate(plan.actions)}
        self._survivors = {}
        disarm_failed: list[ActionResult] = []
        for phase in PHASES:
            batch = [s for s in statements if s.phase == phase and not results[s.action].error]
            if phase == "sessions":
                self._terminate(plan, batch, results)
            elif phase == "disarm":
                self._list_planted(plan, actual, results)
                disarm_failed = self._disarm(batch, results)
            elif phase == "lockout":
                for part in _by_actions(batch):
                    self._lock_out(part, results)
            else:
                self._run_phase(batch, results)
            if phase == "strip":
                _fail_survivors(self._survivors, results)
                _fail_disarmed(disarm_failed, results)
        for index, action in enumerate(plan.actions):
            if action.kind == "revoke" and action.actual and not results[index].error:
                results[index].owned_objects = {} if action.hold else {
                    db: reassign_target(plan.target, actual, db, action.login)
                    for db in owned_object_databases(action.actual, actual)}
        return results

    def _disarm(self, batch: list[Statement], results: list[ActionResult]
                ) -> list[ActionResult]:
        """The disarm phase, the admin database first (the GRANT that lends the reconciler the
        login's privileges is there). Its failures are returned, not set: the strip must
        still take the login's memberships; the objects then stay with the locked-out,
        stripped login, and nothing moves."""
        scratch = [ActionResult() for _ in results]
        self._run_phase(sorted(batch, key=lambda s: s.database is not None), scratch)
        for index, outcome in enumerate(scratch):
            results[index].statements += outcome.statements
        return scratch

    def _list_planted(self, plan: TargetPlan, actual: ActualState,
                      results: list[ActionResult]) -> None:
        """For the audit: what each login about to be dropped owns, database by database, read
        after its lock-out and the end of its sessions (nothing can be added since) and before
        anything moves. A database that cannot be read is noted, never a reason to stop."""
        logins: dict[str, dict[str, int]] = {}  # database -> login -> action
        for index, action in enumerate(plan.actions):
            if action.kind == "revoke" and action.actual and not action.hold \
                    and not results[index].error:
                for database in owned_object_databases(action.actual, actual):
                    logins.setdefault(database, {})[action.login] = index
        for database, index_of in logins.items():
            try:
                rows = self._read_planted(database, sorted(index_of))
            except (psycopg.Error, TargetError) as exc:
                note = f"(not listed: {_one_line(exc, self.hide)})"
                for index in index_of.values():
                    results[index].planted[database] = [note]
                continue
            for index in index_of.values():
                results[index].planted[database] = []
            for kind_label, name, secdef, grantees, login in rows:
                results[index_of[login]].planted[database].append(
                    describe(kind_label, name, grantees, secdef))

    def _read_planted(self, database: str, logins: list[str]) -> list[Any]:
        if database == self.database:
            return _planted_rows(self.conn, logins)
        with _connect(make_conninfo(self.dsn, dbname=database), self.target) as other:
            return _planted_rows(other, logins)

    def _terminate(self, plan: TargetPlan, batch: list[Statement],
                   results: list[ActionResult]) -> None:
        """The sessions phase's statements, one per revoked login, sent as one query: reading
        pg_stat_activity costs the server the same for one login as for ten thousand. The
        logins are NOLOGIN by now, so no session can start in between."""
        if not batch:
            return
        index_of = {plan.actions[s.action].login: s.action for s in batch}
        self._progress.begin(batch, committing=True)  # no transaction: in doubt once sent
        try:
            rows = self.conn.execute(_TERMINATE, [sorted(index_of)]).fetchall()
        except psycopg.Error as exc:
            self._alive(self.conn, exc)
            _fail(batch, results, _one_line(exc, self.hide))
            return
        self._progress.committed()
        for stmt in batch:
            results[stmt.action].statements += 1
        _ended(rows, index_of, results, self._datnames)
        self._check_survivors(index_of)

    def _check_survivors(self, index_of: dict[str, int]) -> None:
        """pg_terminate_backend returns false when a session has not ended after its timeout,
        and DROP ROLE does not wait for sessions: the backend would live on as a role that no
        longer exists (PUBLIC's privileges still work). Such a login stops after the strip,
        locked out and without memberships, and its action fails; the next run ends the
        session and drops it."""
        rows = self.conn.execute(_SURVIVORS, [sorted(index_of)]).fetchall()
        for login, pid in rows:
            self._survivors.setdefault(index_of[login], []).append(int(pid))

    def _lock_out(self, part: list[Statement], results: list[ActionResult]) -> None:
        """The lock-out of a part in one transaction; when that fails, action by action, as
        in other phases. Each way, a lock-out that waits on a lock ends the sessions of its
        logins and tries again, so no login's session can keep it from being locked out."""
        if self._retried(part, results, self._lock_out_together):
            _count(part, results)
            return
        with self._tx(self.conn, part):
            self.conn.execute(LOCKOUT_WAIT)
            for group in _grouped(part):
                if self._retried(group, results, self._lock_out_savepoint):
                    _count(group, results)

    def _lock_out_together(self, stmts: list[Statement], results: list[ActionResult],
                           attempt: int) -> None:
        with self._tx(self.conn, stmts):
            self.conn.execute(LOCKOUT_WAIT)
            if attempt:
                self._end_sessions(stmts, results)
            _send(self.conn, stmts)

    def _lock_out_savepoint(self, stmts: list[Statement], results: list[ActionResult],
                            attempt: int) -> None:
        with self.conn.transaction():
            if attempt:
                self._end_sessions(stmts, results)
            for stmt in stmts:
                self.conn.execute(stmt.sql.encode())

    def _retried(self, stmts: list[Statement], results: list[ActionResult],
                 run: Callable[[list[Statement], list[ActionResult], int], None]) -> bool:
        """`run` again after a lock wait timed out, up to LOCKOUT_TRIES times. False when it
        failed; a single action's error is then recorded, a part's is left to the fallback."""
        error: psycopg.Error | None = None
        for attempt in range(LOCKOUT_TRIES):
            try:
                run(stmts, results, attempt)
            except psycopg.errors.LockNotAvailable as exc:
                self._alive(self.conn, exc)
                error = exc
                continue
            except psycopg.Error as exc:
                self._alive(self.conn, exc)
                error = exc
                break
            return True
        if error is not None and len({s.action for s in stmts}) == 1:
            _fail(stmts, results, _one_line(error, self.hide))
        return False

    def _end_sessions(self, stmts: list[Statement], results: list[ActionResult]) -> None:
        """The sessions of these statements' logins, ended now, before they are locked out:
        they would be ended right after it anyway."""
        index_of = {self._logins[s.action]: s.action for s in stmts}
        _ended(self.conn.execute(_TERMINATE, [sorted(index_of)]).fetchall(), index_of, results,
               self._datnames)

    def _run_phase(self, batch: list[Statement], results: list[ActionResult]) -> None:
        by_database: dict[str | None, list[Statement]] = {}
        for stmt in batch:
            by_database.setdefault(stmt.database, []).append(stmt)
        for database, stmts in by_database.items():
            if database is None:
                for part in _by_actions(stmts):
                    self._transaction(self.conn, part, results)
                continue
            try:
                other = _connect(make_conninfo(self.dsn, dbname=database), self.target)
            except TargetError as exc:
                _fail(stmts, results, f"database {database}: {exc}")
                continue
            with other:
                for part in _by_actions(stmts):
                    self._transaction(other, part, results)

    def _transaction(self, conn: psycopg.Connection[Any], stmts: list[Statement],
                     results: list[ActionResult]) -> None:
        """Fast path: the whole batch in one transaction, many statements per round trip.
        When that fails, the same transaction again with a savepoint per action, so one bad
        action is reported and the others still happen."""
        try:
            with self._tx(conn, stmts):
                _send(conn, stmts)
        except psycopg.Error as exc:
            self._alive(conn, exc)
            self._per_action(conn, stmts, results)
            return
        _count(stmts, results)

    def _per_action(self, conn: psycopg.Connection[Any], stmts: list[Statement],
                    results: list[ActionResult]) -> None:
        """A savepoint per action; within an update, one per statement, so a repair that is
        refused (a membership a superuser granted, say) does not undo the others, such as a
        shortened expiry. Creations and revocations stay whole: a DROP OWNED after a failed
        REASSIGN OWNED would destroy the login's objects."""
        groups: dict[int, list[Statement]] = {}
        for stmt in stmts:
            groups.setdefault(stmt.action, []).append(stmt)
        with self._tx(conn, stmts):
            for index, group in groups.items():
                if self._kinds.get(index) == "update":
                    for stmt in group:
                        self._savepoint(conn, [stmt], results)
                else:
                    self._savepoint(conn, group, results)

    def _savepoint(self, conn: psycopg.Connection[Any], group: list[Statement],
                   results: list[ActionResult]) -> None:
        try:
            with conn.transaction():
                for stmt in group:
                    conn.execute(stmt.sql.encode())
        except psycopg.Error as exc:
            self._alive(conn, exc)
            _fail(group, results, _one_line(exc, self.hide))
            return
        results[group[0].action].statements += len(group)

    def _alive(self, conn: psycopg.Connection[Any], exc: psycopg.Error) -> None:
        if conn.closed or conn.broken:
            raise ConnectionLost(f"connection lost: {_one_line(exc, self.hide)}") from None

    def close(self) -> None:
        self.conn.close()


def _planted_rows(conn: psycopg.Connection[Any], logins: list[str]) -> list[Any]:
    """(label, name, SECURITY DEFINER, grantees, login) of every object the logins own."""
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        rows = conn.execute(_LIST_PLANTED, {"logins": logins}).fetchall()
    return [(label, name, secdef, grantees, login)
            for _, label, name, secdef, grantees, login in rows]


def _send(conn: psycopg.Connection[Any], stmts: list[Statement]) -> None:
    """The fast path: CHUNK statements per round trip; statements of actions that carry a
    verifier one per query, pipelined (see query_strings)."""
    for alone, part in query_strings(stmts):
        if not alone:
            conn.execute(";\n".join(s.sql for s in part).encode())
            continue
        with conn.pipeline():
            for stmt in part:
                conn.execute(stmt.sql.encode())


def query_strings(stmts: list[Statement]) -> list[tuple[bool, list[Statement]]]:
    """The statements in consecutive parts, in order: (False, part) is one query string of at
    most CHUNK statements; (True, part) sends each statement as a query of its own. When a
    statement in a query string fails, PostgreSQL logs the whole string
    (log_min_error_statement): a verifier must never share one with another login's
    statements, so an action with one has its statements sent alone."""
    out: list[tuple[bool, list[Statement]]] = []
    for group in _grouped(stmts):
        alone = any(s.sql != s.shown for s in group)  # shown masks the verifier
        if out and out[-1][0] == alone and (alone or len(out[-1][1]) + len(group) <= CHUNK):
            out[-1][1].extend(group)
        else:
            out.append((alone, list(group)))
    return out


def _ended(rows: list[Any], index_of: dict[str, int], results: list[ActionResult],
           databases: dict[int, str]) -> None:
    """Count the sessions pg_terminate_backend ended, and keep which they were."""
    for row in rows:
        if row[1]:
            result = results[index_of[row[0]]]
            result.sessions_ended += 1
            result.ended_sessions.append(pg_usage.ended(row, databases))


def _count(stmts: list[Statement], results: list[ActionResult]) -> None:
    for stmt in stmts:
        results[stmt.action].statements += 1


def _grouped(stmts: list[Statement]) -> list[list[Statement]]:
    """The statements of each action, in order."""
    groups: dict[int, list[Statement]] = {}
    for stmt in stmts:
        groups.setdefault(stmt.action, []).append(stmt)
    return list(groups.values())


def _grant_options(rows: list[Any]) -> Mapping[str, tuple[str, ...]]:
    """What the access levels' group roles hold a GRANT OPTION on, in this database (and on
    databases): other databases' catalogs are not read. Names are printed against the
    session's search_path, pg_catalog only (see _SETUP), so schema-qualified."""
    found: dict[str, list[str]] = {}
    for role, what in rows:
        found.setdefault(role, []).append(what)
    return MappingProxyType({role: tuple(items) for role, items in found.items()})


def _by_actions(stmts: list[Statement]) -> Iterator[list[Statement]]:
    """The statements in parts of at most TX_ACTIONS whole actions, in order."""
    ordered = _grouped(stmts)
    for start in range(0, len(ordered), TX_ACTIONS):
        yield [stmt for group in ordered[start:start + TX_ACTIONS] for stmt in group]


def _fail_survivors(survivors: dict[int, list[int]], results: list[ActionResult]) -> None:
    for index, pids in survivors.items():
        if results[index].error is None:
            results[index].error = (
                f"{len(pids)} session(s) still open after pg_terminate_backend (pid "
                f"{', '.join(map(str, pids))}): the login is locked out and stripped but not "
                f"dropped; the next run ends its sessions and drops it")


def _fail_disarmed(disarmed: list[ActionResult], results: list[ActionResult]) -> None:
    for index, outcome in enumerate(disarmed):
        if outcome.error and results[index].error is None:
            results[index].error = (
                f"its objects could not be disarmed ({outcome.error}): the login is locked "
                "out and stripped but keeps them and is not dropped; the reconciler needs to "
                "reach them (a superuser, or USAGE on their schemas)")


def _fail(stmts: list[Statement], results: list[ActionResult], error: str) -> None:
    for index in {s.action for s in stmts}:
        if results[index].error is None:
            results[index].error = error


def _one_line(exc: BaseException, hide: tuple[str, ...]) -> str:
    return scrubbed_line(str(exc), hide, type(exc).__name__)


def _secrets(dsn: str) -> tuple[str, ...]:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except (psycopg.Error, UnicodeDecodeError):
        password = None
    return dsn_secrets(dsn, str(password) if password is not None else None)


def _connect(dsn: str, target: Target) -> psycopg.Connection[Any]:
    """libpq quotes a DSN it cannot parse (`missing "=" after "postgresql://u:pw@…"`), password
    and all: such an error is reported without libpq's text."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error:
        raise TargetError(f"cannot connect: the DSN in {where(target, dsn)} is malformed (libpq "
                          "cannot parse it: look for spaces, quotes or a mistyped "
                          "postgresql://)") from None
    except UnicodeDecodeError:  # its repr quotes the value, password and all
        raise TargetError(f"cannot connect: the DSN in {where(target, dsn)} is malformed: a "
                          "value is not UTF-8 once percent-decoded (a %XX escape in the "
                          "password?)") from None
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                               application_name="jitgrant", options="-c lock_timeout=10s")
    except psycopg.Error as exc:
        raise TargetError(f"cannot connect to {_where(dsn)}{_tls_asked(dsn, target)}: "
                          f"{_one_line(exc, _secrets(dsn))}") from None


def _where(dsn: str) -> str:
    """The server, in jitgrant's words: libpq and psycopg name it, or not, by release."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or params.get("hostaddr") or "the local socket")
    return f"{host}:{params.get('port') or 5432}"


def _tls_asked(dsn: str, target: Target) -> str:
    """Say so when the DSN requires TLS: libpq's own words for a server without it change
    between releases."""
    mode = str(conninfo_to_dict(dsn).get("sslmode") or "")
    if mode in ("require", "verify-ca", "verify-full"):
        return f" with TLS (sslmode={mode} in {where(target, dsn)})"
    return ""


def _dangerous_groups(rows: list[Any]) -> dict[str, str]:
    """Group -> why a member would be superuser-equivalent: its own reason first, else the
    first role (by name) it leads to that has one."""
    found: dict[str, str] = {}
    for group, role, *flags in sorted(rows, key=lambda r: (r[0], r[1] != r[0], r[1])):
        why = _power(role, *flags)
        if why is not None and group not in found:
            found[group] = f"is {why}" if role == group else \
                f"can become {role} through memberships, which is {why}"
    return found


def _power(role: str, superuser: bool, createrole: bool, bypassrls: bool, replication: bool,
           own: bool, server_role: bool) -> str | None:
    if own:
        return "the reconciler's own role"
    if superuser:
        return "a superuser"
    attributes = [word for has, word in ((createrole, "CREATEROLE"), (bypassrls, "BYPASSRLS"),
                                         (replication, "REPLICATION")) if has]
    if attributes:
        return f"a role with {', '.join(attributes)}"
    if server_role:
        return f"a server role that {SERVER_POWER_ROLES[role]}"
    return None


def _role(row: Any, member_of: list[tuple[str, str]], members: list[tuple[str, str]],
          depends: list[str], sessions: int, superuser: bool, admin_of: set[str],
          config_databases: list[str]) -> ActualRole:
    (name, login, sup, createdb, createrole, repl, bypass, inherit, until, inf, neginf,
     connlimit, password, comment, config) = row
    valid_until = INFINITY if inf else NEG_INFINITY if neginf else until
    return ActualRole(
        name=name, can_login=login, superuser=sup, createdb=createdb, createrole=createrole,
        replication=repl, bypassrls=bypass, inherit=inherit, valid_until=valid_until,
        connection_limit=None if connlimit < 0 else connlimit, verifier=password,
        verifier_known=bool(superuser), comment=comment,
        member_of=frozenset(g for g, _ in member_of), member_of_grants=tuple(member_of),
        admin_of=frozenset(admin_of),
        members=frozenset(m for m, _ in members), members_grants=tuple(members),
        has_config=bool(config), settings=pg_settings.role_settings(config),
        config_databases=tuple(sorted(config_databases)),
        depends_in=tuple(sorted(depends)), sessions=sessions)


# -- standing access (read only) -------------------------------------------------------------

# Logins that can log in and do not expire within a year (jitgrant's own always expire, at
# most max_duration away): outside the namespace except never_touch, and every one inside it,
# where jitgrant's logins look like temporary access. The expiry is text, made by the server:
# a VALID UNTIL after year 9999 has no Python datetime.
_STANDING = """SELECT rolname, rolsuper,
  CASE WHEN rolvaliduntil IS NULL THEN 'no VALID UNTIL'
    WHEN rolvaliduntil = 'infinity' THEN 'VALID UNTIL infinity'
    ELSE 'expires ' || to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD') END,
  starts_with(rolname, %(prefix)s), rolname = ANY(%(keep)s)
FROM pg_roles
WHERE rolcanlogin AND rolname <> current_user
  AND (rolvaliduntil IS NULL OR rolvaliduntil > now() + %(horizon)s::interval)
  AND (starts_with(rolname, %(prefix)s) OR NOT rolname = ANY(%(keep)s))
ORDER BY rolname"""
STANDING_HORIZON = "1 year"  # an expiry further away than this is standing access


def standing_logins(target: Target, dsn: str) -> list[tuple[str, bool, str]]:
    """Logins that can log in and do not expire within STANDING_HORIZON, as (name, superuser,
    why): outside the namespace, and inside it too (with what jitgrant does about them); the
    connecting role and never_touch outside the namespace left out. Reads only."""
    conn = _connect(dsn, target)
    try:
        with _driver_errors("reading the roles", _secrets(dsn)):
            rows = conn.execute(_STANDING, {"prefix": target.role_prefix,
                                            "keep": sorted(target.never_touch),
                                            "horizon": STANDING_HORIZON}).fetchall()
    finally:
        conn.close()
    return [(str(name), bool(sup), str(why) + _in_namespace(inside, sup, kept))
            for name, sup, why, inside, kept in rows]


def _in_namespace(inside: bool, superuser: bool, never_touch: bool) -> str:
    if not inside:
        return ""
    if superuser:
        return "; inside the namespace but a superuser: jitgrant leaves it alone"
    if never_touch:
        return "; inside the namespace but in never_touch: jitgrant leaves it alone"
    return "; inside the namespace: apply revokes it or puts its grant's expiry back"


# -- what `jitgrant doctor` reads (read only) --------------------------------------------------

# The reconciler's own role, in one row: superuser, CREATEROLE, can it end sessions (the
# privileges of pg_signal_backend), is its connection encrypted, can it see other roles'
# sessions whole (pg_read_all_stats: their start, client and last activity).
_DOCTOR_SELF = """SELECT current_user, r.rolsuper, r.rolcreaterole,
  pg_has_role(current_user, 'pg_signal_backend', 'USAGE'),
  coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
  current_setting('server_version_num')::int, current_database(),
  pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
FROM pg_roles r WHERE r.rolname = current_user"""
# Each group role an access level names: whether it exists, is a superuser, and whether the
# reconciler holds ADMIN on it (16+: what granting and revoking it needs).
_DOCTOR_GROUPS = """SELECT g.name, r.rolname IS NOT NULL, coalesce(r.rolsuper, false),
  r.rolname IS NOT NULL AND pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION')
FROM unnest(%(groups)s::text[]) AS g(name) LEFT JOIN pg_roles r ON r.rolname = g.name"""
# Every database a login may own objects in, whether the reconciler may connect to it, and
# who receives a revoked login's objects there: reassign_owned_to, else the database's owner,
# with whether the reconciler has that role's privileges (REASSIGN OWNED needs them).
_DOCTOR_DATABASES = """SELECT d.datname, has_database_privilege(current_user, d.oid, 'CONNECT'),
  o.rolname, o.rolsuper, pg_has_role(current_user, o.oid, 'USAGE')
FROM pg_database d
JOIN pg_roles o ON o.rolname = coalesce(%(owner)s, pg_get_userbyid(d.datdba))
WHERE d.datallowconn ORDER BY 1"""
# reassign_owned_to when it names no role at all.
_DOCTOR_ROLE_EXISTS = "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)"
# Managed logins the reconciler cannot drop: 16+ needs ADMIN on each (a CREATEROLE role has it
# on the logins it created); a superuser login is left alone by apply anyway.
_DOCTOR_UNDROPPABLE = """SELECT r.rolname FROM pg_roles r
WHERE starts_with(r.rolname, %(prefix)s) AND NOT r.rolsuper AND r.rolname <> current_user
  AND NOT pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION') ORDER BY 1"""
LOG_PARAMETERS = ("log_statement", "log_min_error_statement", "log_min_duration_statement")
_DOCTOR_LOG = """SELECT p, has_parameter_privilege(p, 'SET')
FROM unnest(%(params)s::text[]) AS q(p)"""


def doctor_facts(target: Target, dsn: str, groups: frozenset[str]) -> dict[str, Any]:
    """What `jitgrant doctor` judges, read from the catalog in one short session: nothing is
    created, granted or set, and the target's lock is tried without waiting and released at
    once. Raises TargetError when the server cannot be reached."""
    conn = _connect(dsn, target)
    try:
        with _driver_errors("reading the privileges", _secrets(dsn)):
            return _doctor_facts(conn, target, groups)
    finally:
        conn.close()


def _doctor_facts(conn: psycopg.Connection[Any], target: Target,
                  groups: frozenset[str]) -> dict[str, Any]:
    row = conn.execute(_DOCTOR_SELF).fetchone()
    assert row is not None
    admin, superuser, createrole, signal, tls, version, database, stats = row
    owner = target.reassign_owned_to
    facts: dict[str, Any] = {
        "admin": admin, "superuser": superuser, "createrole": createrole, "signal": signal,
        "stats": stats,
        "tls": tls, "version": version, "database": database,
        "sslmode": str(conninfo_to_dict(conn.info.dsn).get("sslmode") or ""),
        "groups": conn.execute(_DOCTOR_GROUPS, {"groups": sorted(groups)}).fetchall(),
        "databases": conn.execute(_DOCTOR_DATABASES, {"owner": owner}).fetchall(),
        "owner_exists": owner is None or _exists(conn, owner),
        "undroppable": [r[0] for r in conn.execute(
            _DOCTOR_UNDROPPABLE, {"prefix": target.role_prefix})] if version >= 160000 else [],
        "log": dict(conn.execute(_DOCTOR_LOG, {"params": list(LOG_PARAMETERS)}).fetchall())
        if version >= 150000 else {},
        "lock_holders": try_lock(conn, target)}
    return facts


def _exists(conn: psycopg.Connection[Any], role: str) -> bool:
    row = conn.execute(_DOCTOR_ROLE_EXISTS, [role]).fetchone()
    return bool(row and row[0])


def try_lock(conn: psycopg.Connection[Any], target: Target) -> list[tuple[int, str]] | None:
    """None when the target's lock is free: taken without waiting and released at once.
    Otherwise who holds it, as (session, role)."""
    key = lock_key(target)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        return None
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    rows = conn.execute(_LOCK_HOLDERS, {"high": unsigned >> 32,
                                        "low": unsigned & 0xFFFFFFFF}).fetchall()
    return [(int(pid), str(role)) for pid, role in rows]
