"""MySQL/MariaDB account limits from an access level's settings (MAX_QUERIES_PER_HOUR, ...):
the columns the engine's batched account read adds, and the ALTER USER that sets them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pymysql.converters import escape_string

from ..settings import MYSQL_LIMITS

# Setting name -> the column of mysql.user (MySQL 8) and the key of mysql.global_priv's JSON
# (MariaDB 10.4+) that hold it; 0 means no limit.
COLUMNS = {"MAX_QUERIES_PER_HOUR": "max_questions", "MAX_UPDATES_PER_HOUR": "max_updates",
           "MAX_CONNECTIONS_PER_HOUR": "max_connections"}
assert tuple(COLUMNS) == MYSQL_LIMITS

MYSQL8_COLUMNS = ", " + ", ".join(COLUMNS.values())
MARIADB_COLUMNS = ", " + ", ".join(f"JSON_VALUE(Priv, '$.{key}')" for key in COLUMNS.values())


def account_limits(values: Iterable[object]) -> tuple[tuple[str, str], ...]:
    """The limits an account has (those not 0), as (name, value) sorted by name."""
    found = [(name, str(int(str(v)))) for name, v in zip(COLUMNS, values, strict=True)
             if v is not None and str(v).isdigit() and int(str(v)) > 0]
    return tuple(sorted(found))


def limits_sql(acct: str, to_set: Sequence[tuple[str, str]], to_reset: Sequence[str]) -> str:
    """One ALTER USER with every limit to change; a limit reset is 0. Names come from
    COLUMNS only and values are whole numbers: nothing else reaches the SQL."""
    parts = [f"{name} {int(value)}" for name, value in to_set if name in COLUMNS]
    parts += [f"{name} 0" for name in to_reset if name in COLUMNS]
    return f"ALTER USER {acct} WITH " + " ".join(parts)


# -- MariaDB's server_audit plugin ----------------------------------------------------------
# A login whose access level says `server_audit: true` is kept in server_audit_incl_users, so
# its statements are in the audit log whatever else the list holds. The variable is global and
# not transactional, and people edit it too: each change is one SET GLOBAL that adds or removes
# one user name from the value the server holds at that moment (never a whole list computed
# earlier), so entries outside the namespace are never dropped, and a change lost to a
# concurrent SET is drift that the next run puts back. An empty list means every user is
# logged: jitgrant leaves it empty (adding one name would stop logging all the others).

AUDIT_VARIABLES = ("SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES "
                   "WHERE VARIABLE_NAME IN ('SERVER_AUDIT_LOGGING', 'SERVER_AUDIT_INCL_USERS')")
_LIST = "@@GLOBAL.server_audit_incl_users"
_PLAIN = f"REPLACE({_LIST}, ' ', '')"  # the plugin allows spaces after commas


def audit_state(rows: Iterable[tuple[object, object]]) -> tuple[str, frozenset[str]]:
    """(absent | off | all | list, the user names in the list)."""
    found = {str(name).upper(): str(value or "") for name, value in rows}
    if "SERVER_AUDIT_LOGGING" not in found:
        return "absent", frozenset()
    users = frozenset(u.strip() for u in found.get("SERVER_AUDIT_INCL_USERS", "").split(",")
                      if u.strip())
    if found["SERVER_AUDIT_LOGGING"].upper() not in ("ON", "1"):
        return "off", users
    return ("list" if users else "all"), users


def audit_add_sql(user: str) -> str:
    name = _literal(user)
    return (f"SET GLOBAL server_audit_incl_users = IF(FIND_IN_SET({name}, {_PLAIN}) > 0, "
            f"{_LIST}, CONCAT_WS(',', NULLIF({_LIST}, ''), {name}))")


def audit_remove_sql(user: str) -> str:
    entry = _literal("," + user + ",")
    return (f"SET GLOBAL server_audit_incl_users = TRIM(BOTH ',' FROM "
            f"REPLACE(CONCAT(',', {_PLAIN}, ','), {entry}, ','))")


def _literal(value: str) -> str:
    """As the engine's literal(): pymysql's escaping (the session has backslash escapes)."""
    return "'" + str(escape_string(value)) + "'"
