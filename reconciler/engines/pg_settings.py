"""PostgreSQL role settings (ALTER ROLE ... SET): what the server takes, what a login has, and
the statements that put an access level's settings on a login.

The role's settings are read with its other attributes (pg_roles.rolconfig, which is
pg_db_role_setting's row with setdatabase = 0) in the engine's one batched catalog read;
pg_settings is read in the same round trip."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from psycopg import sql

from ..settings import PG_NAME, ParamSpec

# Every parameter, with whether the reconciler may set it for a role: a superuser may set
# any; otherwise a user-context one needs only the rights on the role (CREATEROLE), and a
# superuser-context one GRANT SET ON PARAMETER (PostgreSQL 15+).
_PARAMETERS = """SELECT name, context, vartype, unit, min_val, max_val, enumvals, {may_set}
FROM pg_catalog.pg_settings"""
_MAY_SET_15 = ("(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) "
               "OR context = 'user' OR pg_catalog.has_parameter_privilege(name, 'SET')")
_MAY_SET_OLD = ("(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) "
                "OR context = 'user'")


def parameters_query(version: int) -> str:
    return _PARAMETERS.format(may_set=_MAY_SET_15 if version >= 150000 else _MAY_SET_OLD)


def parameters(rows: Iterable[Any]) -> Mapping[str, ParamSpec]:
    return MappingProxyType({
        str(name): ParamSpec(str(name), str(context), str(vartype), unit, min_val, max_val,
                             tuple(enumvals or ()), bool(may_set))
        for name, context, vartype, unit, min_val, max_val, enumvals, may_set in rows})


def role_settings(config: list[str] | None) -> tuple[tuple[str, str], ...]:
    """rolconfig's `name=value` entries as sorted (name, value) pairs."""
    pairs = (entry.partition("=") for entry in config or ())
    return tuple(sorted((name, value) for name, _, value in pairs))


def setting_name(name: str) -> str:
    """A parameter name for ALTER ROLE ... SET: each part quoted as an identifier by psycopg,
    after the same strict check as the policy schema (no other name reaches SQL)."""
    if not PG_NAME.fullmatch(name):
        raise ValueError(f"not a parameter name: {name!r}")
    return ".".join(sql.Identifier(part).as_string(None) for part in name.split("."))


def set_sql(role: str, name: str, value: str) -> str:
    return ("ALTER ROLE " + role + " SET " + setting_name(name) + " = "
            + sql.Literal(value).as_string(None))


def settings_sql(role: str, to_set: Sequence[tuple[str, str]], to_reset: Sequence[str],
                 wanted: Sequence[tuple[str, str]]) -> list[str]:
    """RESET of the settings found and not wanted, then SET of those missing or different.
    A name the server stored that is not a plain parameter name (set by hand, quoted) is not
    put in SQL: RESET ALL then, and every wanted setting is set again."""
    if any(not PG_NAME.fullmatch(name) for name in to_reset):
        return ["ALTER ROLE " + role + " RESET ALL"] + [set_sql(role, n, v) for n, v in wanted]
    return (["ALTER ROLE " + role + " RESET " + setting_name(n) for n in to_reset]
            + [set_sql(role, n, v) for n, v in to_set])
