"""Request deadlines: the policy keys (validated with path:line) and what is due, computed from
states built in memory with a fixed clock (queue.py's pure part)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from reconciler import forge
from reconciler.errors import Problem
from reconciler.load import SourceFile
from reconciler.model import AccessLevel, Grant, Policy, Provenance
from reconciler.queue import (Item, QueueInput, Request, _fenced, _requested, deadlines,
                              ending_item, items, request_item)
from reconciler.validate import RawGrant, Snapshot, load_policy
from tests.helpers import policy

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def load(**level: Any) -> tuple[Policy, list[Problem]]:
    doc = policy(approvers=["@acme/dba"])
    doc["access"]["readonly"].update(level)
    text = yaml.safe_dump(doc, sort_keys=False)
    problems: list[Problem] = []
    return load_policy([SourceFile("policies/main.yaml", text.encode())], problems), problems


def line_of(key: str, **level: Any) -> int:
    doc = policy(approvers=["@acme/dba"])
    doc["access"]["readonly"].update(level)
    lines = yaml.safe_dump(doc, sort_keys=False).splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.strip().startswith(f"{key}:"))


def test_the_deadline_keys_are_read_like_max_duration() -> None:
    found, problems = load(review_within="30m", escalate_to=["@acme/oncall-leads", "@carol"],
                           request_ttl="P1D", remind_before="45m")
    assert problems == []
    level = found.access["readonly"]
    assert level.review_within == timedelta(minutes=30)
    assert level.escalate_to == ("@acme/oncall-leads", "@carol")
    assert level.request_ttl == timedelta(days=1)
    assert level.remind_before == timedelta(minutes=45)
    plain = load()[0].access["readonly"]
    assert (plain.review_within, plain.request_ttl, plain.escalate_to) == (None, None, ())
    assert plain.remind_before is None  # the target's, else 30m (queue.deadlines)


@pytest.mark.parametrize(("key", "value"), [("review_within", "soon"),
                                            ("request_ttl", "0m"),
                                            ("remind_before", "-5m"),
                                            ("escalate_to", ["alice@example.com"]),
                                            ("escalate_to", []),
                                            ("escalate_to", ["@a/b c"])])
def test_bad_deadlines_are_refused_at_their_line(key: str, value: Any) -> None:
    extra = {"review_within": "30m"} if key == "escalate_to" else {}
    found, problems = load(**{key: value, **extra})
    assert not found.valid and "readonly" not in found.access  # its grants are never granted
    [problem] = [p for p in problems if key in p.message]
    assert problem.path == "policies/main.yaml"
    at = line_of(key, **{key: value, **extra})
    assert problem.line == (at + 1 if isinstance(value, list) and value else at)  # the item


def test_escalate_to_needs_review_within() -> None:
    found, problems = load(escalate_to=["@acme/oncall-leads"])
    [problem] = problems
    assert "escalate_to: needs review_within" in problem.message
    assert problem.line == line_of("escalate_to", escalate_to=["@acme/oncall-leads"])


# -- what is due --------------------------------------------------------------------------------

LEVEL = AccessLevel("readonly", ("app",), timedelta(hours=8),
                    review_within=timedelta(minutes=30), escalate_to=("@acme/oncall-leads",),
                    request_ttl=timedelta(hours=24))


def a_policy(level: AccessLevel = LEVEL) -> Policy:
    found = load()[0]
    return Policy(found.targets, {"readonly": level}, found.people)


def a_grant(expires: timedelta = timedelta(hours=4), starts: timedelta | None = None,
            pr: int | None = None) -> Grant:
    prov = Provenance("c" * 40, "A", "a@example.com", NOW, NOW, "m" * 40, pr, NOW) if pr \
        else None
    return Grant("grants/db1/alice.yaml", "alice", "db1", "readonly", NOW + expires, "r",
                 starts=NOW + starts if starts is not None else None, provenance=prov)


def a_request(age: timedelta, grant: Grant | RawGrant | None = None,
              reviewers: tuple[str, ...] = ()) -> Request:
    pull = forge.OpenPull(11, "access/a", (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "alice-gh", reviewers, False)
    return Request("access/a", NOW, (grant or a_grant(),), pull)


def test_nothing_is_due_within_review_within() -> None:
    item = request_item(a_request(timedelta(minutes=10)), a_policy(), NOW)
    assert item.due == "" and item.why == "review within 30m: 20m left"
    assert item.waiting_on == ("@acme/dba",)


def test_escalate_after_review_within_then_close_after_the_ttl() -> None:
    item = request_item(a_request(timedelta(minutes=31), reviewers=("carol",)), a_policy(), NOW)
    assert item.due == "escalate" and item.add_reviewers == ("@acme/oncall-leads",)
    assert item.waiting_on == ("@carol",) and item.pr == 11
    assert item.marker == "<!-- jitgrant:queue:escalated -->" and item.marker in item.body
    late = request_item(a_request(timedelta(hours=24)), a_policy(), NOW)
    assert late.due == "close" and "request_ttl of 1d" in late.why


def test_remind_without_escalate_to() -> None:
    level = AccessLevel("readonly", ("app",), timedelta(hours=8),
                        review_within=timedelta(minutes=30))
    item = request_item(a_request(timedelta(hours=1)), a_policy(level), NOW)
    assert item.due == "remind" and "@acme/dba" in item.body


def test_a_passed_start_or_end_closes_the_request() -> None:
    ended = request_item(a_request(timedelta(0), a_grant(expires=timedelta(0))), a_policy(),
                         NOW)
    assert ended.due == "close" and "ends at" in ended.why
    started = request_item(a_request(timedelta(0), a_grant(starts=timedelta(minutes=-1))),
                           a_policy(), NOW)
    assert started.due == "close" and "starts at" in started.why
    raw = RawGrant("grants/db1/x.yaml", "alice", "db1", "nope", NOW - timedelta(1))
    assert request_item(a_request(timedelta(0), raw), a_policy(), NOW).due == "close"


def test_no_deadline_no_step() -> None:
    level = AccessLevel("readonly", ("app",), timedelta(hours=8))
    item = request_item(a_request(timedelta(days=30)), a_policy(level), NOW)
    assert item.due == "" and "no review_within" in item.why


def load_target(**deadlines: Any) -> tuple[Policy, list[Problem], str]:
    doc = policy(approvers=["@acme/dba"])
    doc["targets"]["db1"].update(deadlines)
    text = yaml.safe_dump(doc, sort_keys=False)
    problems: list[Problem] = []
    found = load_policy([SourceFile("policies/main.yaml", text.encode())], problems)
    return found, problems, text


def test_a_target_gives_its_deadlines_to_levels_without_their_own() -> None:
    found, problems, _ = load_target(review_within="10m", escalate_to=["@acme/leads"],
                                     request_ttl="2h", remind_before="1h")
    assert problems == []
    plain = AccessLevel("readonly", ("app",), timedelta(hours=8))
    on_target = Policy(found.targets, {"readonly": plain}, found.people)
    item = request_item(a_request(timedelta(minutes=11)), on_target, NOW)
    assert item.due == "escalate" and item.add_reviewers == ("@acme/leads",)
    assert request_item(a_request(timedelta(hours=2)), on_target, NOW).due == "close"
    level = deadlines(on_target, "readonly", "db1")
    assert level.remind_before == timedelta(hours=1)
    # the level's own deadlines win over the target's
    own = Policy(found.targets, {"readonly": LEVEL}, found.people)
    assert request_item(a_request(timedelta(minutes=11)), own, NOW).due == ""
    assert deadlines(own, "readonly", "db1").escalate_to == ("@acme/oncall-leads",)
    assert deadlines(a_policy(plain), "readonly", None).remind_before == timedelta(minutes=30)


def test_a_bad_target_deadline_is_refused_at_its_line() -> None:
    found, problems, text = load_target(request_ttl="tomorrow")
    assert "db1" not in found.targets
    [problem] = [p for p in problems if "request_ttl" in p.message]
    assert problem.message.startswith("targets.db1.request_ttl: ")
    assert text.splitlines()[problem.line - 1].strip().startswith("request_ttl:")


def test_an_ending_grant_gets_the_extend_command_that_fits() -> None:
    item = ending_item(a_grant(expires=timedelta(minutes=20), pr=7), LEVEL, NOW)
    assert item.due == "remind" and item.pr == 7
    assert item.command == "jitgrant extend grants/db1/alice.yaml --for 1h"
    short = AccessLevel("readonly", ("app",), timedelta(minutes=30))
    item = ending_item(a_grant(expires=timedelta(minutes=20)), short, NOW)
    assert item.command == "jitgrant extend grants/db1/alice.yaml --for 10m"
    full = ending_item(a_grant(expires=timedelta(minutes=20)),
                       AccessLevel("readonly", ("app",), timedelta(minutes=20)), NOW)
    assert full.command is None and "cannot be extended" in full.body


def test_the_ending_marker_changes_with_the_expiry() -> None:
    one = ending_item(a_grant(expires=timedelta(minutes=20)), LEVEL, NOW)
    two = ending_item(a_grant(expires=timedelta(minutes=25)), LEVEL, NOW)
    assert one.marker != two.marker


def test_producers_are_a_seam() -> None:
    snapshot = Snapshot(a_policy(), [a_grant(expires=timedelta(minutes=5))], [])
    data = QueueInput(snapshot, (a_request(timedelta(hours=1)),), NOW)
    assert [i.kind for i in items(data)] == ["request", "ending"]

    def break_glass(_: QueueInput) -> list[Item]:
        return [Item("break_glass", "grants/db1/x.yaml", "remind", "needs review", pr=3)]

    assert [i.kind for i in items(data, [break_glass])] == ["break_glass"]


def test_a_code_block_no_backtick_can_end() -> None:
    assert _fenced("a ``` b") == "````\na ``` b\n````"


def test_reviewers_as_gh_names_them() -> None:
    names = forge.reviewer_names([{"__typename": "User", "login": "Carol"},
                                  {"__typename": "Team", "name": "Leads", "slug": "acme/leads"},
                                  {"__typename": "Team", "slug": "ops",
                                   "organization": {"login": "acme"}}, "junk"])
    assert names == ("carol", "acme/leads", "acme/ops")
    assert _requested("@acme/leads", names) and _requested("@Carol", names)
    assert _requested("@acme/leads", ("leads",)) and not _requested("@bob", names)
