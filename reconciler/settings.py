"""Per-login settings of an access level (`settings: {name: value}`), checked without I/O.

PostgreSQL: role settings (ALTER ROLE ... SET), checked by name here and against the server's
pg_settings at plan time. MySQL/MariaDB: account limits (MAX_QUERIES_PER_HOUR ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import Problem

if TYPE_CHECKING:  # model.py imports ParamSpec from here
    from .model import ActualState, DesiredState, Target

# Settings that would widen what a login can do, or let it escape what is watched: refused
# at validate time, whatever the value.
PG_REFUSED = {
    "role": "switches the login's sessions to another role",
    "session_authorization": "switches the login's sessions to another role",
    "search_path": "points unqualified names at schemas others may write: their functions "
                   "would run with the login's rights",
    "session_replication_role": "turns off triggers and foreign keys, audit triggers among "
                                "them",
    "session_preload_libraries": "loads code into the login's sessions",
    "local_preload_libraries": "loads code into the login's sessions",
    "dynamic_library_path": "changes where code is loaded from",
    "lo_compat_privileges": "turns off privilege checks on large objects",
    "allow_system_table_mods": "lets sessions alter the system catalogs",
    "allow_in_place_tablespaces": "lets sessions make tablespaces inside the data directory",
    "ignore_system_indexes": "is a debugging switch that can corrupt the catalog",
    "zero_damaged_pages": "destroys data on a damaged page",
}
PG_REFUSED_PREFIXES = {"pgaudit.role": "changes which role pgaudit's object audit follows"}

# MySQL/MariaDB account limits, named as in the manual's CREATE USER resource options.
MYSQL_LIMITS = ("MAX_QUERIES_PER_HOUR", "MAX_UPDATES_PER_HOUR", "MAX_CONNECTIONS_PER_HOUR")
MYSQL_LIMIT_MAX = 2**32 - 1
PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?")


@dataclass(frozen=True)
class ParamSpec:
    """One row of pg_settings: what a role setting of this name may be."""

    name: str
    context: str  # user | superuser | backend | postmaster | sighup | ...
    vartype: str  # bool | integer | real | string | enum
    unit: str | None = None
    min_val: str | None = None
    max_val: str | None = None
    enumvals: tuple[str, ...] = ()
    may_set: bool = True  # the reconciler may set it for a role (superuser, or SET granted)


def value_text(value: object) -> str:
    """A YAML value as PostgreSQL stores it: booleans as on/off, numbers as written."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def engine_of(name: str) -> str:
    return "mysql" if name.isupper() or name == "server_audit" else "postgres"


def name_problem(name: str, value: object) -> str | None:
    """Why a setting may never be given, on any target; None when it may."""
    if engine_of(name) == "mysql":
        if name == "server_audit":
            return None if isinstance(value, bool) else "must be true or false"
        if name == "MAX_USER_CONNECTIONS":
            return "use connection_limit, which is MAX_USER_CONNECTIONS on mysql targets"
        if name not in MYSQL_LIMITS:
            return f"not an account limit (one of {', '.join(MYSQL_LIMITS)})"
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 0 <= value <= MYSQL_LIMIT_MAX:
            return f"must be a whole number from 0 (no limit) to {MYSQL_LIMIT_MAX}"
        return None
    if not PG_NAME.fullmatch(name):
        return "not a parameter name (lowercase letters, digits, _ and one dot)"
    if name in PG_REFUSED:
        return f"refused: it {PG_REFUSED[name]}"
    for prefix, why in PG_REFUSED_PREFIXES.items():
        if name == prefix or name.startswith(prefix + "."):
            return f"refused: it {why}"
    return None


def refusal_for_engine(settings: Mapping[str, str], engine: str) -> str | None:
    """Settings of the other engine: the level's grants on this target are refused."""
    wrong = sorted(n for n in settings if engine_of(n) != engine)
    if not wrong:
        return None
    kind = "MySQL/MariaDB account limits" if engine == "postgres" else "PostgreSQL settings"
    return f"settings {', '.join(wrong)} are {kind}, not for a {engine} target"


# -- values, against pg_settings -------------------------------------------------------------

_BOOLS = {"on", "off", "true", "false", "yes", "no", "1", "0"}
_TIME = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60000.0, "h": 3600000.0, "d": 86400000.0}
_MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*")


def pg_value_problem(spec: ParamSpec | None, name: str, value: str) -> str | None:
    """Why `name = value` cannot be a role setting on this server; None when it can."""
    if spec is None:
        if "." in name:
            return (f"{name} is not a parameter of this server: its library is not loaded "
                    f"(shared_preload_libraries)")
        return f"{name} is not a parameter of this server"
    if spec.context not in ("user", "superuser"):
        return f"{name} cannot be set per role (its context is {spec.context})"
    if not spec.may_set:
        return (f"{name} is a superuser setting: the reconciler needs superuser or "
                f"GRANT SET ON PARAMETER {name} (PostgreSQL 15+) to set it for a role")
    return _value_problem(spec, value)


def _value_problem(spec: ParamSpec, value: str) -> str | None:
    if spec.vartype == "bool":
        return None if value.lower() in _BOOLS else f"{spec.name} takes on or off, not {value!r}"
    if spec.vartype == "enum":
        if value.lower() in spec.enumvals:
            return None
        return f"{spec.name} takes one of {', '.join(spec.enumvals)}, not {value!r}"
    if spec.vartype in ("integer", "real"):
        return _number_problem(spec, value)
    return None  # string: any text (the driver quotes it)


def _number_problem(spec: ParamSpec, value: str) -> str | None:
    number = _in_base_unit(spec, value)
    if number is None:
        units = "" if not spec.unit else f" (a number, optionally with a unit: {spec.unit} " \
                                          "if none)"
        return f"{spec.name} takes a number{units}, not {value!r}"
    if spec.vartype == "integer" and number != int(number) and not spec.unit:
        return f"{spec.name} takes a whole number, not {value!r}"
    low = float(spec.min_val) if spec.min_val is not None else None
    high = float(spec.max_val) if spec.max_val is not None else None
    if (low is not None and number < low) or (high is not None and number > high):
        unit = f" {spec.unit}" if spec.unit else ""
        return f"{spec.name} = {value!r} is outside {spec.min_val}..{spec.max_val}{unit}"
    return None


def _in_base_unit(spec: ParamSpec, value: str) -> float | None:
    m = _NUMBER.fullmatch(value)
    if m is None:
        return None
    number, unit = float(m.group(1)), m.group(2)
    if not unit:
        return number
    base = spec.unit or ""
    for table in (_TIME, _MEMORY):
        scale = _scale(base, table)
        if scale is not None and unit in table:
            return number * table[unit] / scale
    return None


def _scale(unit: str, table: Mapping[str, float]) -> float | None:
    """The size of a pg_settings unit ('ms', 's', '8kB', 'kB', ...) in the table's terms."""
    m = re.fullmatch(r"(\d*)([A-Za-z]+)", unit)
    if m is None or m.group(2) not in table:
        return None
    return (int(m.group(1)) if m.group(1) else 1) * table[m.group(2)]


# -- at plan time (pure: what the engine read is in ActualState) ---------------------------


def unfit_settings(desired: DesiredState, actual: ActualState,
                   problems: list[Problem]) -> dict[str, str]:
    """Access levels with a setting this server does not take, each problem reported once at
    its policy line; -> the message for each of the level's grants. PostgreSQL: a parameter
    unknown, not settable per role, beyond the reconciler's rights, or a bad value. MariaDB:
    `server_audit: true` where the plugin is not loaded or not logging. Fail closed: the
    level's logins are not created, and existing ones are left as they are until the policy
    is fixed."""
    found = {}
    for level in desired.with_settings.values():
        bad = [(n, why) for n, v in level.settings
               if (why := setting_problem(desired.target, actual, n, v)) is not None]
        for name, why in bad:
            problems.append(Problem(level.path, level.setting_lines.get(name, level.line),
                                    f"access.{level.name}.settings.{name}: {why} on target "
                                    f"{desired.target.name}"))
        if bad:
            found[level.name] = (f"access level {level.name!r} has a setting target "
                                 f"{desired.target.name} does not take "
                                 f"({', '.join(n for n, _ in bad)}); grant skipped")
    return found


def setting_problem(target: Target, actual: ActualState, name: str, value: str) -> str | None:
    if target.engine == "postgres":
        if not actual.parameters:  # not read (offline)
            return None
        return pg_value_problem(actual.parameters.get(name), name, value)
    if name != "server_audit" or value != "on" or actual.server_audit is None:
        return None
    if actual.server_audit == "absent":
        return "the server_audit plugin is not loaded (INSTALL SONAME 'server_audit')"
    if actual.server_audit == "off":
        return "server_audit_logging is OFF: nothing would be logged"
    return None
