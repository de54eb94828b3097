"""Break-glass access levels in the policies (issue #16, part 3): `validate` refuses one without
allowed_groups or lasting over 4h, one problem at path:line each, and leaves such a level out
(its grants are invalid, never granted); a good one is auto-approvable for its groups."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

from reconciler.errors import Problem
from reconciler.load import SourceFile
from reconciler.review import not_auto_approvable
from reconciler.validate import Context, Snapshot, build_snapshot
from tests.helpers import policy

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
POLICY = "policies/main.yaml"


def snapshot(level: dict[str, Any], grantee: str = "alice",
             changed: frozenset[str] | None = None) -> Snapshot:
    pol = policy()
    pol["access"]["breakglass"] = level
    text = yaml.safe_dump(pol, sort_keys=False, width=10**6).encode()
    grant = {"grantee": grantee, "target": "db1", "access": "breakglass",
             "expires": (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "reason": "INC-9 orders stuck"}
    grants = [SourceFile("grants/db1/bg.yaml", yaml.safe_dump(grant, sort_keys=False).encode())]
    return build_snapshot([SourceFile(POLICY, text)], grants, Context(NOW, changed=changed))


def line_of(key: str, level: dict[str, Any]) -> int:
    """The line of access.breakglass.<key> in the dumped policy."""
    pol = policy()
    pol["access"]["breakglass"] = level
    lines = yaml.safe_dump(pol, sort_keys=False, width=10**6).splitlines()
    start = lines.index("  breakglass:")
    return next(i + 1 for i in range(start, len(lines)) if lines[i].strip().startswith(key))


def level_errors(snap: Snapshot) -> list[Problem]:
    return [p for p in snap.errors if p.path == POLICY]


GOOD = {"roles": ["app_readonly"], "max_duration": "1h", "allowed_groups": ["sre"],
        "break_glass": True}


def test_a_break_glass_level_within_the_rules_is_valid_and_granted() -> None:
    snap = snapshot(GOOD)
    assert snap.errors == []
    assert snap.policy.access["breakglass"].break_glass
    assert [g.path for g in snap.grants] == ["grants/db1/bg.yaml"]


def test_without_allowed_groups_one_problem_at_the_key() -> None:
    level = {k: v for k, v in GOOD.items() if k != "allowed_groups"}
    snap = snapshot(level)
    [problem] = level_errors(snap)
    assert problem.line == line_of("break_glass", level)
    assert "break_glass needs allowed_groups" in problem.message
    assert "breakglass" not in snap.policy.access  # left out: its grants are not granted
    assert snap.grants == [] and [r.path for r in snap.invalid_grants] == ["grants/db1/bg.yaml"]


def test_over_four_hours_one_problem_at_max_duration() -> None:
    level = {**GOOD, "max_duration": "4h1m"}
    [problem] = level_errors(snapshot(level))
    assert problem.line == line_of("max_duration", level)
    assert problem.message == ("access.breakglass.max_duration: 4h1m is over the 4h a "
                               "break_glass level may last")
    assert level_errors(snapshot({**GOOD, "max_duration": "PT4H"})) == []


def test_both_mistakes_are_two_problems() -> None:
    level = {"roles": ["app_readonly"], "max_duration": "2d", "break_glass": True}
    problems = level_errors(snapshot(level))
    assert len(problems) == 2
    assert {p.line for p in problems} == {line_of("break_glass", level),
                                          line_of("max_duration", level)}


def test_a_missing_max_duration_is_one_problem() -> None:
    level = {k: v for k, v in GOOD.items() if k != "max_duration"}
    problems = level_errors(snapshot(level))
    assert len(problems) == 1 and "max_duration" in problems[0].message
    assert problems[0].line == line_of("breakglass", level)


def test_break_glass_false_keeps_the_usual_rules() -> None:
    assert level_errors(snapshot({"roles": ["app_readonly"], "max_duration": "2d",
                                  "break_glass": False})) == []


def test_a_break_glass_grant_is_auto_approvable_only_for_the_allowed_groups() -> None:
    changed = frozenset({"grants/db1/bg.yaml"})
    assert not_auto_approvable(snapshot(GOOD, changed=changed)) == []
    # bob is in backend, not sre: the grant is invalid, and nothing merges itself
    reasons = not_auto_approvable(snapshot(GOOD, grantee="bob", changed=changed))
    assert "grants/db1/bg.yaml: the grant is invalid" in reasons


def test_a_dangerous_break_glass_level_is_not_auto_approvable() -> None:
    changed = frozenset({"grants/db1/bg.yaml"})
    reasons = not_auto_approvable(snapshot({**GOOD, "dangerous": True}, changed=changed))
    assert reasons == ["grants/db1/bg.yaml: access level 'breakglass' is dangerous"]


def test_the_audit_schema_takes_the_mark_only_as_true() -> None:
    """`break_glass: true` on an action validates; `false` (a hand-made record unmarking a
    grant) does not, and records without it, older ones, still do."""
    from reconciler.breakglass import from_records
    from reconciler.schemas import validator
    from tests.break_glass import record

    [(rel, data)] = record("audit/x.json", "grants/db1/bg.yaml", "a" * 40, "b" * 40, 3).items()
    check = validator("audit")
    assert list(check.iter_errors(data)) == []
    assert [g.grant_file for g in from_records({rel: data})] == ["grants/db1/bg.yaml"]
    data["actions"][0]["break_glass"] = False
    assert list(check.iter_errors(data)) != []
    del data["actions"][0]["break_glass"]
    assert list(check.iter_errors(data)) == [] and from_records({rel: data}) == []
