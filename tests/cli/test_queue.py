"""`jitgrant queue` against a real bare remote holding request branches of different ages, and
a local stand-in for `gh` (tests/ghstandin.py: an executable first on PATH that records every
call and answers from a state file, as GitHub's pull requests would)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.ghstandin import GhStandIn
from tests.helpers import git, grant, stamp, utc
from tests.queue_world import FRESH, STALE, Remote, queue, queue_policy


def two_requests(remote: Remote, gh: GhStandIn) -> None:
    remote.push_request(STALE, "grants/db1/alice-a.yaml", grant("alice", expires=utc(hours=6)))
    remote.push_request(FRESH, "grants/db1/bob-b.yaml", grant("bob", expires=utc(hours=6)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)), reviewers=("acme/dba",))
    gh.add_pull(12, FRESH, created=stamp(utc(minutes=-5)), author="bob-gh")


def test_a_stale_request_is_escalated_once_and_later_closed_as_expired(
        remote: Remote, gh: GhStandIn) -> None:
    two_requests(remote, gh)
    first = queue(remote, "--act")
    assert first.exit_code == 0, first.output
    writes = gh.writes()
    assert writes[0] == ["pr", "edit", "11", "--add-reviewer", "acme/oncall-leads"]
    assert writes[1] == ["pr", "comment", "11", "--body-file", "-"]
    assert len(writes) == 2  # the fresh request (#12) waits: nothing due
    pull = gh.pull(11)
    assert {"__typename": "Team", "name": "oncall-leads", "slug": "acme/oncall-leads"} \
        in pull["reviewRequests"]
    assert "<!-- jitgrant:queue:escalated -->" in pull["comments"][0]["body"]
    assert "@acme/oncall-leads" in pull["comments"][0]["body"]

    again = queue(remote, "--act")
    assert again.exit_code == 0, again.output
    assert gh.writes() == writes  # idempotent: no reviewer added twice, no second comment
    assert "escalate done before" in again.output

    # The team reviews (GitHub then drops the request); the marker still says it was done.
    state = gh.state()
    state["pulls"][0]["reviewRequests"] = []
    state["pulls"][0]["createdAt"] = stamp(utc(hours=-25))  # now older than request_ttl
    gh.save(state)
    third = queue(remote, "--act")
    assert third.exit_code == 0, third.output
    closes = [c for c in gh.writes() if c[:2] == ["pr", "close"]]
    assert closes and closes[0][2] == "11"
    assert "request_ttl of 1d" in closes[0][3] and "jitgrant:queue:closed" in closes[0][3]
    assert gh.pull(11)["state"] == "CLOSED"
    assert len(gh.writes()) == 3
    queue(remote, "--act")
    assert len(gh.writes()) == 3  # closed: nothing more


def test_json_lists_age_waiting_on_and_due(remote: Remote, gh: GhStandIn) -> None:
    two_requests(remote, gh)
    remote.push_request("access/carol/db1-readonly-x", "grants/db1/carol.yaml",
                        grant("alice", expires=utc(hours=6)))  # no pull request
    result = queue(remote, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by = {i["subject"]: i for i in data["items"]}
    stale, fresh, bare = by[STALE], by[FRESH], by["access/carol/db1-readonly-x"]
    assert stale["due"] == "escalate" and stale["pull_request"] == 11
    assert stale["age_from"] == "pull request" and 7000 < stale["age_seconds"] < 7400
    assert stale["waiting_on"] == ["@acme/dba"]
    assert stale["add_reviewers"] == ["@acme/oncall-leads"]
    assert stale["grant_files"] == ["grants/db1/alice-a.yaml"]
    assert fresh["due"] is None and "left" in fresh["why"]
    assert bare["pull_request"] is None and bare["age_from"] == "commit date"
    assert bare["waiting_on"] == ["@acme/dba"]  # the target's approvers
    assert gh.writes() == []  # listing acts on nothing


def test_a_request_whose_end_has_passed_is_closed(remote: Remote, gh: GhStandIn) -> None:
    remote.push_request(STALE, "grants/db1/alice-a.yaml", grant("alice", expires=utc(hours=-1)))
    gh.add_pull(11, STALE, created=stamp(utc(minutes=-5)))
    result = queue(remote, "--act")
    assert result.exit_code == 0, result.output
    [close] = gh.writes()
    assert close[:3] == ["pr", "close", "11"] and "has passed" in close[3]


def test_without_escalate_to_a_reviewer_is_reminded_once(tmp_path: Path,
                                                         gh: GhStandIn) -> None:
    doc = queue_policy()
    del doc["access"]["readonly"]["escalate_to"]
    remote = Remote(tmp_path, doc)
    two_requests(remote, gh)
    queue(remote, "--act")
    queue(remote, "--act")
    [reminder] = gh.writes()
    assert reminder == ["pr", "comment", "11", "--body-file", "-"]
    body = gh.pull(11)["comments"][0]["body"]
    assert "jitgrant:queue:reminded" in body and "@acme/dba" in body


def test_a_grant_about_to_end_gets_one_reminder_with_the_extend_command(
        remote: Remote, gh: GhStandIn) -> None:
    remote.merge_to_main("grants/db1/alice.yaml", grant("alice", expires=utc(minutes=20)),
                         "Merge pull request #7 from alice/grant")
    remote.merge_to_main("grants/db1/bob.yaml", grant("bob", expires=utc(hours=3)),
                         "Merge pull request #8 from bob/grant")
    gh.add_pull(7, "alice/grant", state="MERGED")
    result = queue(remote, "--act", "--format", "json")
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)["items"]
    assert item["kind"] == "ending" and item["pull_request"] == 7
    assert item["command"] == "jitgrant extend grants/db1/alice.yaml --for 1h"
    assert [c[:3] for c in gh.writes()] == [["pr", "comment", "7"]]
    assert "jitgrant extend grants/db1/alice.yaml --for 1h" in gh.pull(7)["comments"][0]["body"]
    queue(remote, "--act")
    assert len(gh.writes()) == 1


def test_gh_failing_is_one_warning_and_exit_1(remote: Remote, gh: GhStandIn) -> None:
    two_requests(remote, gh)
    gh.fail("pr edit")
    result = queue(remote, "--act")
    assert result.exit_code == 1
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "#11" in warnings[0]
    assert [c for c in gh.writes() if c[1] == "comment"] == []  # no comment without the review


def test_gh_missing_lists_from_git_and_exits_1(remote: Remote, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    remote.push_request(STALE, "grants/db1/alice-a.yaml", grant("alice", expires=utc(hours=6)))
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(str(shutil.which("git")))
    monkeypatch.setenv("PATH", str(only_git))
    result = queue(remote, "--act")
    assert result.exit_code == 1
    [warning] = result.stderr.splitlines()
    assert "gh (the GitHub command line) is not on PATH" in warning
    assert STALE in result.stdout and "commit date" in result.stdout


def test_no_forge_lists_the_branches_only(remote: Remote) -> None:
    remote.push_request(STALE, "grants/db1/alice-a.yaml", grant("alice", expires=utc(hours=6)))
    result = queue(remote, "--no-forge")
    assert result.exit_code == 0, result.output
    assert STALE in result.stdout and "commit date" in result.stdout


def test_a_step_that_failed_half_way_is_finished_not_repeated(remote: Remote,
                                                             gh: GhStandIn) -> None:
    two_requests(remote, gh)
    gh.fail("pr comment")
    assert queue(remote, "--act").exit_code == 1  # the reviewers were added, the comment not
    gh.fail()
    assert queue(remote, "--act").exit_code == 0
    # the stand-in records the refused comment too: one edit, a refused and a posted comment
    assert [c[:3] for c in gh.writes()] == [["pr", "edit", "11"], ["pr", "comment", "11"],
                                            ["pr", "comment", "11"]]
    assert len(gh.pull(11)["comments"]) == 1


def test_a_fetch_that_fails_is_a_warning_and_exit_1(remote: Remote, gh: GhStandIn) -> None:
    two_requests(remote, gh)
    git(remote.checkout, "fetch", "-q")
    shutil.rmtree(remote.bare)
    result = queue(remote)
    assert result.exit_code == 1
    [warning] = result.stderr.splitlines()
    assert "git fetch origin failed" in warning and "fetched before are read" in warning
    assert STALE in result.stdout  # read as last fetched


def test_an_ending_grant_without_a_pull_request_is_a_json_line(remote: Remote,
                                                               gh: GhStandIn) -> None:
    remote.merge_to_main("grants/db1/alice.yaml", grant("alice", expires=utc(minutes=20)),
                         "pushed straight to main")
    result = queue(remote, "--act", "--format", "json")
    [item] = json.loads(result.stdout)["items"]
    assert item["kind"] == "ending" and item["pull_request"] is None and item["acted"] is None
    assert item["command"] == "jitgrant extend grants/db1/alice.yaml --for 1h"
    assert gh.writes() == []
