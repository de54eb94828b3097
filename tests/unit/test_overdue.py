"""Overdue revocations from a hand-built desired and actual state (reconciler/overdue.py), and
the GitHub annotations' escaping (reconciler/metrics.py). Pure: no server, no clock."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from reconciler.errors import UserError
from reconciler.metrics import _error
from reconciler.model import ActualRole, Target
from reconciler.overdue import DEFAULT_GRACE, can_log_in, overdue_in, parse_grace
from reconciler.plan import MARKER, desired_state
from tests.unit.test_plan import ADMIN, ALICE, NOW, TARGET, actual, make_grant, snap

ENDED = make_grant(hours=-3)  # alice's grant ended three hours before NOW


def _marked(name: str = ALICE, **changes: object) -> ActualRole:
    role = ActualRole(name=name, comment=f"{MARKER} db1: alice (readonly) state abc")
    return dataclasses.replace(role, **changes)  # type: ignore[arg-type]


def _overdue(*roles: ActualRole, grace: timedelta = DEFAULT_GRACE,
             target: Target = TARGET, grants: tuple[object, ...] = (ENDED,)) -> list[str]:
    desired = desired_state(snap(*grants, target=target), target, NOW)  # type: ignore[arg-type]
    return [o.login for o in overdue_in(desired, actual(*roles), NOW, grace)]


def test_a_login_that_can_log_in_past_its_grants_end_is_overdue() -> None:
    assert _overdue(_marked()) == [ALICE]
    assert _overdue(_marked(valid_until=NOW + timedelta(days=1))) == [ALICE]


def test_the_grace_decides_when_it_becomes_overdue() -> None:
    assert _overdue(_marked(), grace=timedelta(hours=4)) == []
    assert _overdue(_marked(), grace=timedelta(hours=2)) == [ALICE]


@pytest.mark.parametrize("changes", [{"can_login": False}, {"locked": True},
                                     {"valid_until": NOW - timedelta(hours=3)},
                                     {"is_role": True}])
def test_a_login_that_cannot_log_in_is_not_overdue(changes: dict[str, object]) -> None:
    role = _marked(**changes)
    assert not can_log_in(role, NOW)
    assert _overdue(role) == []


def test_a_current_grant_or_no_known_end_is_not_overdue() -> None:
    assert _overdue(_marked(), grants=(make_grant(hours=2),)) == []
    # its grant file is gone and nothing says when it ended: no time to be overdue against
    assert _overdue(_marked(), grants=()) == []


def test_a_mysql_accounts_backstop_time_is_its_grants_end() -> None:
    mysql = dataclasses.replace(TARGET, engine="mysql")
    account = ActualRole(name=ALICE, user=ALICE, backstop_at=NOW - timedelta(hours=1))
    assert _overdue(account, target=mysql, grants=()) == []  # not marked, no grant file
    assert _overdue(account, target=mysql) == [ALICE]  # the grant file's end
    late = dataclasses.replace(account, locked=True)
    assert _overdue(late, target=mysql) == []


def test_the_reconciler_never_touch_and_other_targets_are_not_counted() -> None:
    assert _overdue(_marked(ADMIN), grants=()) == []
    other = ActualRole(name="jit_bob_readonly", comment=f"{MARKER} db2: bob (readonly) state x")
    assert _overdue(other, grants=()) == []
    kept = dataclasses.replace(TARGET, never_touch=frozenset({ALICE}))
    assert _overdue(_marked(), target=kept) == []


def test_a_bad_grace_is_one_clear_error() -> None:
    assert parse_grace("1h30m") == timedelta(hours=1, minutes=30)
    with pytest.raises(UserError, match=r"^--overdue-grace 'soon': "):
        parse_grace("soon")


def test_an_annotation_cannot_be_forged_by_a_message() -> None:
    line = _error("title: a, b", "100% done\r\n::error::forged")
    assert line == "::error title=title%3A a%2C b::100%25 done%0D%0A::error::forged"
    assert "\n" not in line
