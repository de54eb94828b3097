"""Validation rules the README states and no test held (issue 12, finding 11): a mysql grant
needs a verifier, and `mysql.sys` (with the other system accounts) needs `dangerous: true`."""

from __future__ import annotations

import pytest

from tests.helpers import policy
from tests.unit.test_validate import GRANT, POLICY, grant_data, line_of, only_problem, snapshot


def test_a_mysql_grant_without_a_verifier_is_rejected() -> None:
    data = grant_data()
    assert "password_verifier" not in data
    snap = snapshot({GRANT: data}, {POLICY: policy(engine="mysql")})
    found = only_problem(snap)
    assert (found.path, found.line, found.severity) == (GRANT, line_of(data, "target"), "error")
    assert found.message.startswith("password_verifier: required for mysql targets")
    assert snap.grants == []


def test_a_postgres_grant_without_a_verifier_is_valid() -> None:
    snap = snapshot({GRANT: grant_data()}, {POLICY: policy()})
    assert snap.problems == [] and len(snap.grants) == 1


@pytest.mark.parametrize("role", ["mysql.sys", "mysql.infoschema"])
def test_a_mysql_system_account_as_a_role_needs_dangerous(role: str) -> None:
    data = policy(engine="mysql")
    data["access"]["readonly"]["roles"] = [role]
    snap = snapshot(policies={POLICY: data})
    found = [p for p in snap.problems if p.path == POLICY]
    assert len(found) == 1 and found[0].severity == "error"
    assert found[0].message.startswith(f"access.readonly.roles: {role!r} ")
    assert found[0].message.endswith("needs `dangerous: true`")
