"""MySQL/MariaDB account limits from an access level's settings (MAX_QUERIES_PER_HOUR, ...):
the columns the engine's batched account read adds, and the ALTER USER that sets them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
