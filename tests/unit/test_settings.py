"""settings.py: which settings an access level may carry, and their values against pg_settings
rows (pure; the rows here have the shape PostgreSQL 15 gives)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from reconciler.model import DesiredLogin
from reconciler.settings import ParamSpec, name_problem, pg_value_problem, value_text

TIMEOUT = ParamSpec("statement_timeout", "user", "integer", "ms", "0", "2147483647")
WORK_MEM = ParamSpec("work_mem", "user", "integer", "kB", "64", "2147483647")
LOG = ParamSpec("log_statement", "superuser", "enum", enumvals=("none", "ddl", "mod", "all"))
READ_ONLY = ParamSpec("default_transaction_read_only", "user", "bool")
FACTOR = ParamSpec("cursor_tuple_fraction", "user", "real", None, "0", "1")


@pytest.mark.parametrize(("spec", "value"), [
    (TIMEOUT, "5s"), (TIMEOUT, "5000"), (TIMEOUT, "1min"), (TIMEOUT, "0"), (TIMEOUT, "1.5s"),
    (WORK_MEM, "64MB"), (WORK_MEM, "1GB"), (WORK_MEM, "4096"), (LOG, "all"), (LOG, "DDL"),
    (READ_ONLY, "on"), (READ_ONLY, "false"), (FACTOR, "0.5"),
])
def test_values_the_server_takes(spec: ParamSpec, value: str) -> None:
    assert pg_value_problem(spec, spec.name, value) is None


@pytest.mark.parametrize(("spec", "value", "says"), [
    (TIMEOUT, "soon", "takes a number"), (TIMEOUT, "-1", "outside 0..2147483647 ms"),
    (TIMEOUT, "5 parsecs", "takes a number"), (TIMEOUT, "5MB", "takes a number"),
    (WORK_MEM, "1kB", "outside"), (WORK_MEM, "1s", "takes a number"),
    (LOG, "everything", "takes one of none, ddl, mod, all"), (READ_ONLY, "maybe", "on or off"),
    (FACTOR, "2", "outside"),
])
def test_values_the_server_refuses(spec: ParamSpec, value: str, says: str) -> None:
    problem = pg_value_problem(spec, spec.name, value)
    assert problem is not None and says in problem


def test_context_and_rights() -> None:
    postmaster = ParamSpec("shared_buffers", "postmaster", "integer", "8kB")
    assert "cannot be set per role (its context is postmaster)" in str(
        pg_value_problem(postmaster, "shared_buffers", "1"))
    not_ours = ParamSpec("log_statement", "superuser", "enum", enumvals=("all",), may_set=False)
    assert "GRANT SET ON PARAMETER log_statement" in str(
        pg_value_problem(not_ours, "log_statement", "all"))
    assert "library is not loaded" in str(pg_value_problem(None, "pgaudit.log", "all"))


@pytest.mark.parametrize(("name", "value"), [
    ("role", "postgres"), ("session_authorization", "x"), ("search_path", "a"),
    ("session_replication_role", "replica"), ("pgaudit.role", "x"),
    ("MAX_USER_CONNECTIONS", 3), ("MAX_QUERIES_PER_HOUR", -1), ("MAX_QUERIES_PER_HOUR", "1"),
    ("MAX_QUERIES_PER_HOUR", True), ("server_audit", "yes"), ("MAX_BANANAS", 1),
])
def test_names_refused_on_every_target(name: str, value: object) -> None:
    assert name_problem(name, value) is not None


def test_yaml_values_as_postgresql_stores_them() -> None:
    assert [value_text(v) for v in (True, False, 5000, "5s")] == ["on", "off", "5000", "5s"]


def test_the_fingerprint_changes_with_settings_and_stays_without() -> None:
    """Logins made before settings existed keep their fingerprint (no spurious update)."""
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    plain = DesiredLogin("jit_a_r", "a", "r", when, ("g",), None, None, ())
    before = hashlib.sha256(f"{when.isoformat()}|g|None|".encode()).hexdigest()[:12]
    assert plain.fingerprint == before  # the formula before settings
    one = DesiredLogin("jit_a_r", "a", "r", when, ("g",), None, None, (),
                       (("statement_timeout", "5s"),))
    other = DesiredLogin("jit_a_r", "a", "r", when, ("g",), None, None, (),
                         (("statement_timeout", "6s"),))
    assert len({plain.fingerprint, one.fingerprint, other.fingerprint}) == 3
