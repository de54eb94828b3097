"""MySQL/MariaDB: what jitgrant reads of the namespace's connections and of their use (issue
#15), in the catalog read mysql.py already makes (the processlist query it always sent, and
one more query when performance_schema is on): no round trip per login.

A connection's start is not exposed by either server (PROCESSLIST.TIME is the time in its
current state), so `started` stays None: the audit knows when a connection was first seen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from ..model import SESSION_CAP, LoginUsage, OpenSession
from ..sessions import clean

_PREFIX = "LEFT(p.USER, CHAR_LENGTH(%(prefix)s)) = %(prefix)s"
# Every connection of the namespace: id, user, client host:port, database, and its last
# activity (now less the seconds in its current state, by the server's clock, in UTC).
_CONNECTIONS = ("SELECT p.ID, p.USER, p.HOST, p.DB, "  # noqa: S608 - constants only
                "UTC_TIMESTAMP() - INTERVAL p.TIME SECOND, {program} "
                "FROM information_schema.PROCESSLIST p {join}"
                "WHERE p.ID <> CONNECTION_ID() AND " + _PREFIX)
# With performance_schema on: the program name the client sent with its connection.
_PROGRAM_JOIN = ("LEFT JOIN performance_schema.session_connect_attrs a "
                 "ON a.PROCESSLIST_ID = p.ID AND a.ATTR_NAME = 'program_name' ")
SESSIONS = _CONNECTIONS.format(program="NULL", join="")
SESSIONS_PS = _CONNECTIONS.format(program="a.ATTR_VALUE", join=_PROGRAM_JOIN)
# Connections per user since the server started, kept after they end (summed over the
# client hosts the server tells apart). Counted by user name: an account dropped and made
# again under its name goes on from where the first left off.
ACCOUNTS = ("SELECT USER, SUM(TOTAL_CONNECTIONS) FROM performance_schema.accounts "
            "WHERE USER IS NOT NULL AND LEFT(USER, CHAR_LENGTH(%(prefix)s)) = %(prefix)s "
            "GROUP BY USER")
# The connections of logins being revoked, looked up again once they are locked: what
# mysql.py kills, with what the audit lists of each.
CONNECTIONS = ("SELECT p.ID, p.USER, p.HOST, p.DB, NULL FROM information_schema.PROCESSLIST p "
               "WHERE BINARY p.USER IN %(users)s AND p.ID <> CONNECTION_ID()")
CONNECTIONS_PS = ("SELECT p.ID, p.USER, p.HOST, p.DB, a.ATTR_VALUE "
                  "FROM information_schema.PROCESSLIST p " + _PROGRAM_JOIN +
                  "WHERE BINARY p.USER IN %(users)s AND p.ID <> CONNECTION_ID()")

Query = Callable[[str, dict[str, Any]], list[Any]]
Read = tuple[list[tuple[Any, Any]], tuple[OpenSession, ...], Mapping[str, LoginUsage],
             tuple[str, ...]]


def read(query: Query, params: dict[str, Any], performance_schema: bool) -> Read:
    """(id, user) of every connection (what revocations kill), the sessions as the audit
    lists them (at most SESSION_CAP per login, lowest ids first), the usage per login and the
    counters the server keeps."""
    rows = query(SESSIONS_PS if performance_schema else SESSIONS, params)
    totals = {str(u): int(n or 0) for u, n in query(ACCOUNTS, params)} \
        if performance_schema else None
    ids = [(pid, user) for pid, user, *_ in rows]
    listed: dict[str, list[OpenSession]] = {}
    counts: dict[str, int] = {}
    for pid, user, host, database, active, program in sorted(rows, key=lambda r: int(r[0])):
        login = str(user)
        counts[login] = counts.get(login, 0) + 1
        if counts[login] <= SESSION_CAP:
            listed.setdefault(login, []).append(OpenSession(
                login=login, id=str(pid), started=None, last_active=_utc(active),
                client=clean(host), application=clean(program), database=clean(database)))
    sessions = tuple(s for login in sorted(listed) for s in listed[login])
    return ids, sessions, _usage(counts, totals), \
        ("connections_total",) if totals is not None else ()


def _usage(counts: dict[str, int], totals: dict[str, int] | None) -> Mapping[str, LoginUsage]:
    logins = set(counts) | set(totals or {})
    return MappingProxyType({
        login: LoginUsage(login=login, sessions_open=counts.get(login, 0),
                          connections_total=None if totals is None else totals.get(login, 0))
        for login in sorted(logins)})


def ended(row: Any) -> OpenSession:
    """A connection of CONNECTIONS's rows, as an ended session (its start is not known)."""
    pid, user, host, database, program = row
    return OpenSession(login=str(user), id=str(pid), started=None, client=clean(host),
                       application=clean(program), database=clean(database))


def _utc(value: Any) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if isinstance(value, datetime) else None
