"""PostgreSQL: what jitgrant reads of the namespace's sessions and of their use (issue #15).

Every query here is sent in the batches postgres.py already makes (the catalog read's pipeline,
the revocation's one terminate query): no round trip per login."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from psycopg import sql

from ..model import SESSION_CAP, LoginUsage, OpenSession
from ..sessions import clean

# Where pg_stat_statements can be read, in the session's set-up query: the extension's schema
# in this database, when its library is loaded (preloaded: its postmaster setting exists; a
# placeholder set with ALTER ROLE ... SET is not listed in pg_settings). NULL otherwise.
STATEMENTS_SCHEMA = """(SELECT n.nspname FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname = 'pg_stat_statements' AND EXISTS (
    SELECT FROM pg_settings WHERE name = 'pg_stat_statements.max' AND context = 'postmaster'))"""

# The namespace's sessions, at most %(cap)s per login (the oldest), each with how many the
# login has open in all. Last activity: the later of the last state change and the last query
# start (the server's clock). Superusers and roles with pg_read_all_stats see every column; a
# role without it sees the pid and the application name of others' sessions, the rest NULL.
SESSIONS = """SELECT usename, pid, backend_start, greatest(state_change, query_start),
  host(client_addr), application_name, datname, open
FROM (SELECT a.*, row_number() OVER (PARTITION BY usename ORDER BY backend_start, pid) AS nth,
        count(*) OVER (PARTITION BY usename) AS open
      FROM pg_stat_activity a
      WHERE starts_with(usename, %(prefix)s) AND pid <> pg_backend_pid()) s
WHERE nth <= %(cap)s ORDER BY usename, nth"""

# Statements run per login, from pg_stat_statements(false): the counters without reading the
# query texts' file. Cluster-wide (every database), keyed by the role's oid: a login dropped
# and made again under its name starts from zero.
_CALLS = """SELECT r.rolname, sum(s.calls)::bigint FROM {schema}.pg_stat_statements(false) s
JOIN pg_roles r ON r.oid = s.userid
WHERE starts_with(r.rolname, %(prefix)s) GROUP BY 1"""

# The revocation's end of sessions: the same one query for every revoked login, now telling
# which sessions it ended, with their start. The database by oid, named from the catalog read
# (pg_database_names): naming it here would read pg_database, and a lock held there must not
# hold up the end of a login's sessions (the view's join to it is left out when unused).
TERMINATE = """SELECT usename, pg_terminate_backend(pid, 5000), pid, backend_start,
  host(client_addr), application_name, datid
FROM pg_stat_activity WHERE usename = ANY(%s) AND pid <> pg_backend_pid()
ORDER BY usename, backend_start, pid"""


def sessions_query(prefix: str) -> tuple[str, dict[str, Any]]:
    return SESSIONS, {"prefix": prefix, "cap": SESSION_CAP}


def calls_query(schema: str, prefix: str) -> tuple[str, dict[str, Any]]:
    text = sql.SQL(_CALLS).format(schema=sql.Identifier(schema)).as_string(None)
    return text, {"prefix": prefix}


def open_sessions(rows: list[Any]) -> tuple[tuple[OpenSession, ...], dict[str, int]]:
    """The sessions of SESSIONS's rows, and how many each login has open."""
    found, counts = [], {}
    for login, pid, started, active, client, application, database, total in rows:
        found.append(OpenSession(login=str(login), id=str(pid), started=_when(started),
                                 last_active=_when(active), client=clean(client),
                                 application=clean(application), database=clean(database)))
        counts[str(login)] = int(total)
    return tuple(found), counts


def usage(counts: Mapping[str, int], calls: list[Any] | None) -> Mapping[str, LoginUsage]:
    """Per login: the sessions it has open and, when pg_stat_statements was read (`calls` not
    None), its calls (0 for a login without any)."""
    per_login = {str(login): int(n or 0) for login, n in calls or ()}
    logins = set(counts) | set(per_login)
    return MappingProxyType({
        login: LoginUsage(login=login, sessions_open=counts.get(login, 0),
                          calls=None if calls is None else per_login.get(login, 0))
        for login in sorted(logins)})


def ended(row: Any, databases: Mapping[int, str]) -> OpenSession:
    """A session TERMINATE ended (its row less the login and the result); `databases`: oid
    -> name, as the catalog read found them."""
    login, _, pid, started, client, application, datid = row
    return OpenSession(login=str(login), id=str(pid), started=_when(started),
                       client=clean(client), application=clean(application),
                       database=clean(databases.get(int(datid))) if datid is not None else None)


def _when(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
