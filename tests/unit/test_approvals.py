"""Approval judged from a pull request's facts (GitHub's semantics, plus the second wall's
checks), CODEOWNERS read as a forge reads it, and repository.require_approval in the policy.
No forge here: the facts are built in memory in the shape GitHub's REST API answers."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from reconciler.approvals import (facts, gitlab_facts, in_force, judge, recorded_approvers,
                                  refusal)
from reconciler.codeowners import owners_of
from reconciler.errors import Problem
from reconciler.lookup import Lookup
from reconciler.load import SourceFile
from reconciler.model import Grant, Person, Policy, Provenance
from reconciler.validate import load_policy
from tests.forge_stub import gitlab_approval, merge_request, pull, review
from tests.helpers import policy

MERGE = "m" * 40
WHEN = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
POLICY = Policy(MappingProxyType({}), MappingProxyType({}), MappingProxyType({
    "alice": Person("alice", github="Alice-GH"), "bob": Person("bob")}))


def a_grant(grantee: str = "alice", merge: str | None = MERGE, pr: int | None = 12) -> Grant:
    prov = Provenance("c" * 40, "A", "a@example.com", WHEN, WHEN, merge, pr, WHEN)
    return Grant("grants/db1/x.yaml", grantee, "db1", "readonly", WHEN, "r", provenance=prov)


def logins(reviews: list[dict[str, Any]], merged_at: str | None = "2026-12-06T10:00:00Z"
           ) -> list[tuple[str, str]]:
    return [(r.login, r.state) for r in in_force(reviews, merged_at)]


def test_the_latest_decisive_review_before_the_merge_decides() -> None:
    assert logins([review("d", "APPROVED", "2026-12-06T09:00:00Z"),
                   review("d", "COMMENTED", "2026-12-06T09:10:00Z")]) == [("d", "APPROVED")]
    assert logins([review("d", "APPROVED", "2026-12-06T09:00:00Z"),
                   review("d", "CHANGES_REQUESTED", "2026-12-06T09:10:00Z")]) == \
        [("d", "CHANGES_REQUESTED")]
    assert logins([review("d", "CHANGES_REQUESTED", "2026-12-06T09:00:00Z"),
                   review("d", "APPROVED", "2026-12-06T09:10:00Z")]) == [("d", "APPROVED")]
    assert logins([review("d", "DISMISSED", "2026-12-06T09:00:00Z")]) == []
    # after the merge: not in force; at the very second of the merge: in force
    assert logins([review("d", "APPROVED", "2026-12-06T10:00:01Z")]) == []
    assert logins([review("d", "APPROVED", "2026-12-06T10:00:00Z")]) == [("d", "APPROVED")]
    # a later approval after the merge does not undo a change request before it
    assert logins([review("d", "CHANGES_REQUESTED", "2026-12-06T09:00:00Z"),
                   review("d", "APPROVED", "2026-12-06T11:00:00Z")]) == \
        [("d", "CHANGES_REQUESTED")]
    # a deleted account (user: null) and a pending review (no submitted_at) count for nothing
    assert logins([{**review("x", "APPROVED"), "user": None},
                   {**review("y", "APPROVED"), "submitted_at": None}]) == []
    # logins differ in case only: one reviewer
    assert logins([review("Dave", "APPROVED", "2026-12-06T09:00:00Z"),
                   review("dave", "CHANGES_REQUESTED", "2026-12-06T09:10:00Z")]) == \
        [("dave", "CHANGES_REQUESTED")]


def count(author: str, reviews: list[dict[str, Any]], grant: Grant | None = None,
          **pr: Any) -> int:
    found = facts(12, pull(12, author, pr.pop("merge", MERGE), **pr), reviews)
    return judge(grant or a_grant(), found, POLICY, {}).approvals


def test_approvals_by_the_author_or_the_grantee_do_not_count() -> None:
    assert count("bob-gh", [review("dave-gh", "APPROVED")]) == 1
    assert count("bob-gh", [review("Bob-GH", "APPROVED")]) == 0  # the author, any case
    assert count("bob-gh", [review("alice-gh", "APPROVED")]) == 0  # the grantee's github
    assert count("bob-gh", [review("dave-gh", "APPROVED"), review("erin-gh", "APPROVED")]) == 2


def test_an_approval_of_an_earlier_commit_does_not_count() -> None:
    assert count("bob-gh", [review("dave-gh", "APPROVED", commit_id="0" * 40)]) == 0


def test_a_pull_request_merged_as_another_commit_or_not_merged_approves_nothing() -> None:
    verdict = judge(a_grant(merge="f" * 40), facts(12, pull(12, "bob-gh", MERGE),
                                                  [review("dave-gh", "APPROVED")]), POLICY, {})
    assert verdict.approvals == 0 and "was merged as mmmmmmmmmmmm" in str(verdict.why_not)
    open_pr = facts(12, pull(12, "bob-gh", None, merged_at=None),
                    [review("dave-gh", "APPROVED")])
    assert judge(a_grant(), open_pr, POLICY, {}).why_not == "pull request #12 is not merged"


def test_refusal_reasons() -> None:
    pr = facts(12, pull(12, "bob-gh", MERGE), [review("dave-gh", "APPROVED")])
    ok = judge(a_grant(), pr, POLICY, {"dave-gh": True})
    assert refusal(a_grant(), ok, POLICY, 1) is None
    assert "has 1 approving review(s)" in str(refusal(a_grant(), ok, POLICY, 2))
    nameless = a_grant("bob")  # no people.bob.github: their own review is not told apart
    assert "people.bob.github" in str(refusal(nameless, judge(nameless, pr, POLICY, {}),
                                              POLICY, 1))
    assert ok.approval["reviews"] == [{"login": "dave-gh", "state": "APPROVED",
                                       "submitted_at": "2026-12-06T09:55:00Z",
                                       "code_owner": True, "counted": True}]


def test_recorded_approvers_are_the_reviews_that_counted() -> None:
    pr = facts(12, pull(12, "bob-gh", MERGE), [review("bob-gh", "APPROVED", review_id=1),
                                               review("dave-gh", "APPROVED", review_id=2)])
    approval = judge(a_grant(), pr, POLICY, {}).approval
    assert recorded_approvers(approval) == ["dave-gh"]
    older = {**approval, "reviews": [{k: v for k, v in r.items() if k != "counted"}
                                     for r in approval["reviews"]]}
    assert recorded_approvers(older) == ["dave-gh"]  # the author's own left out
    assert recorded_approvers({**approval, "note": "merged as another commit"}) == []
    assert recorded_approvers({**approval, "lookup": "unavailable"}) == []
    assert recorded_approvers(None) == []


def test_gitlab_facts() -> None:
    """GitLab's times in milliseconds become the audit's; an approval dated after the merge is
    left out, an undated one kept; a squash-only merge is its squash commit."""
    mr = merge_request(7, "bob-gl", None, squash_sha="s" * 40,
                       merged_at="2026-12-06T10:00:00.123Z")
    found = gitlab_facts(7, mr, [gitlab_approval("dave-gl", None),
                                 gitlab_approval("erin-gl", "2026-12-06T10:00:01.000Z"),
                                 gitlab_approval("DAVE-GL", "2026-12-06T09:00:00.000Z")])
    assert (found.merged_at, found.merge_commit_sha, found.author, found.merged_by) == (
        "2026-12-06T10:00:00Z", "s" * 40, "bob-gl", "carol-gl")
    assert [(r.login, r.submitted_at, r.commit_id) for r in found.reviews] == [
        ("dave-gl", None, None)]
    opened = gitlab_facts(7, merge_request(7, "bob-gl", "m" * 40, merged_at=None), [])
    assert (opened.merged_at, opened.merge_commit_sha) == (None, None)


@pytest.mark.parametrize("path, owners", [
    ("grants/db1/a.yaml", ("@dave-gh", "@acme/dba")),
    ("grants/db10/a.yaml", ("@acme/security",)),  # /grants/db1/ is a folder, not a prefix
    ("policies/main.yaml", ("@acme/security", "@acme/policy")),
    ("x/docs/readme.md", ("@docs",)),
    ("grants/db2/deep/b.yaml", ("@acme/security",)),
])
def test_codeowners_last_match_wins(path: str, owners: tuple[str, ...]) -> None:
    text = ("# comment\n* @acme/security\n/grants/db1/ @dave-gh @acme/dba  # inline\n"
            "policies/ @acme/security @acme/policy\n*.md @docs\n")
    assert owners_of(text, path) == owners


def load(doc: dict[str, Any]) -> tuple[Policy, list[Problem]]:
    problems: list[Problem] = []
    source = SourceFile("policies/main.yaml", yaml.safe_dump(doc).encode())
    return load_policy([source], problems), problems


def test_require_approval_in_the_policy() -> None:
    assert load(policy())[0].require_approval == 0
    assert load({**policy(), "repository": {"require_approval": 2}})[0].require_approval == 2
    for bad in (-1, "two", 1.5, True):
        found, problems = load({**policy(), "repository": {"require_approval": bad}})
        assert not found.valid, bad  # an invalid policy grants nothing (fail closed)
        assert any("require_approval" in p.message for p in problems), problems


def test_a_code_owner_by_name_any_case_and_an_e_mail_owner_that_cannot_be_told() -> None:
    lookup = Lookup(Path("/nonexistent"), POLICY, {}, None)
    assert lookup._owns(("@Dave-GH",), "dave-gh") is True
    assert lookup._owns(("@erin-gh",), "dave-gh") is False
    assert lookup._owns(("dave@example.com",), "dave-gh") is None
    assert lookup._owns(("dave@example.com", "@dave-gh"), "dave-gh") is True
    assert lookup._owns((), "dave-gh") is False
