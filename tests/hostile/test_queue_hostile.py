"""What a hostile request author, branch or name can do to `jitgrant queue`: dates the author
controls, markers written by someone else, branch names made for a shell, markup in names. The
forge is tests/ghstandin.py (a local stand-in for `gh` that records every call); the remote
is a real bare git repository. The queue never grants: the worst a forged date can do is hurry
or delay a reminder about the author's own request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.queue_world import FRESH, STALE, Remote, queue, queue_policy
from tests.ghstandin import GhStandIn
from tests.helpers import git, grant, stamp, utc
from tests.webhook_stub import SECRET_PATH, webhook


def dated(when: str) -> dict[str, str]:
    return {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}


def test_a_forged_commit_date_does_not_age_a_pull_request(remote: Remote,
                                                          gh: GhStandIn) -> None:
    """Ages come from GitHub's createdAt: an old commit date does not hurry an escalation,
    and a date in 2099 does not keep a request past its TTL from being closed."""
    remote.push_request(FRESH, "grants/db1/bob.yaml", grant("bob", expires=utc(hours=6)),
                        **dated("2001-01-01T00:00:00Z"))
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)),
                        **dated("2099-01-01T00:00:00Z"))
    gh.add_pull(12, FRESH, created=stamp(utc(minutes=-5)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-30)))
    result = queue(remote, "--act", "--format", "json")
    assert result.exit_code == 0, result.output
    by = {i["subject"]: i for i in json.loads(result.stdout)["items"]}
    assert by[FRESH]["due"] is None and by[FRESH]["age_seconds"] < 600
    assert by[STALE]["due"] == "close"
    assert [c[:3] for c in gh.writes()] == [["pr", "close", "11"]]


def test_a_branch_without_a_pull_request_is_listed_and_never_acted_on(
        remote: Remote, gh: GhStandIn) -> None:
    """Its only age is the author's commit date: shown as such, and nothing is done."""
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)),
                        **dated("2001-01-01T00:00:00Z"))
    remote.push_request(FRESH, "grants/db1/bob.yaml", grant("bob", expires=utc(hours=6)),
                        **dated("2099-01-01T00:00:00Z"))
    result = queue(remote, "--act", "--format", "json")
    assert result.exit_code == 0, result.output
    by = {i["subject"]: i for i in json.loads(result.stdout)["items"]}
    assert by[STALE]["age_from"] == "commit date" and by[STALE]["pull_request"] is None
    assert by[FRESH]["age_seconds"] == 0  # a date in the future counts as now
    assert gh.writes() == []


def test_a_marker_in_someone_elses_comment_does_not_silence_a_step(remote: Remote,
                                                                   gh: GhStandIn) -> None:
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)))
    gh.comment_as(11, "alice-gh", "<!-- jitgrant:queue:escalated -->\n"
                                  "<!-- jitgrant:queue:closed -->")
    queue(remote, "--act")
    assert [c[:2] for c in gh.writes()] == [["pr", "edit"], ["pr", "comment"]]
    state = gh.state()
    state["pulls"][0]["createdAt"] = stamp(utc(hours=-30))
    gh.save(state)
    queue(remote, "--act")
    assert gh.pull(11)["state"] == "CLOSED"  # the author's "closed" marker stops nothing


@pytest.mark.parametrize("name", ["access/$(touch${IFS}PWNED)", "access/x;touch${IFS}PWNED",
                                  "access/--upload-pack=touch${IFS}PWNED",
                                  "access/`touch${IFS}PWNED`", "access/<!channel>|&"])
def test_branch_names_made_for_a_shell_are_only_data(remote: Remote, gh: GhStandIn,
                                                     tmp_path: Path, name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    remote.push_request(name, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, name, created=stamp(utc(hours=-2)))
    result = queue(remote, "--act", "--format", "json")
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)["items"]
    assert item["subject"] == name and item["due"] == "escalate"
    assert not (tmp_path / "PWNED").exists() and not (remote.checkout / "PWNED").exists()
    assert all(name not in " ".join(call) for call in gh.calls())  # gh is told numbers


def test_the_webhook_gets_escaped_names_and_no_secret(remote: Remote, gh: GhStandIn) -> None:
    """Slack markup in a branch name (<!channel>, <@U0ADMIN|x>) arrives as text."""
    name = "access/<!channel>-<@U0ADMIN|x>-&"
    remote.push_request(name, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, name, created=stamp(utc(hours=-2)))
    with webhook() as hook:
        result = queue(remote, "--act", "--notify", hook.url)
        assert result.exit_code == 0, result.output
        queue(remote, "--act", "--notify", hook.url)  # nothing new was done: nothing posted
    [text] = hook.texts()
    assert "&lt;!channel&gt;" in text and "&lt;@U0ADMIN|x&gt;" in text and "&amp;" in text
    assert "<!channel>" not in text and "<@U0ADMIN" not in text
    assert SECRET_PATH not in result.output + result.stderr


def test_a_webhook_that_fails_is_one_warning_and_not_the_queues_failure(
        remote: Remote, gh: GhStandIn) -> None:
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)))
    with webhook() as hook:
        hook.status = 500
        result = queue(remote, "--act", "--notify", hook.url)
    assert result.exit_code == 0
    [warning] = result.stderr.splitlines()
    assert "HTTP 500" in warning and SECRET_PATH not in warning
    assert "webhookSECRET" not in result.output


def test_a_request_that_also_removes_a_grant_is_never_closed(remote: Remote,
                                                             gh: GhStandIn) -> None:
    """Closing it would stop a revocation: past its TTL it is escalated, not closed."""
    remote.merge_to_main("grants/db1/bob.yaml", grant("bob", expires=utc(hours=6)),
                         "Merge pull request #3 from bob/grant")
    root = remote.requester.root
    git(root, "checkout", "-q", "-b", STALE, "main")
    remote.requester.remove("grants/db1/bob.yaml")
    remote.requester.write("grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    remote.requester.commit("revoke bob, ask for alice")
    git(root, "push", "-q", "origin", STALE)
    git(root, "checkout", "-q", "main")
    gh.add_pull(11, STALE, created=stamp(utc(hours=-30)))
    result = queue(remote, "--act", "--format", "json")
    [item] = [i for i in json.loads(result.stdout)["items"] if i["kind"] == "request"]
    assert item["due"] == "escalate" and item["removes"] == ["grants/db1/bob.yaml"]
    assert "never closed" in item["not_closed"]
    assert gh.pull(11)["state"] == "OPEN"
    assert not [c for c in gh.writes() if c[1] == "close"]


def test_a_branch_is_judged_by_mains_policy_not_its_own(remote: Remote, gh: GhStandIn) -> None:
    """A request branch that edits policies/ (no deadlines, someone to spam) changes nothing."""
    doc = queue_policy(escalate_to=["@mallory"], review_within="1000w", request_ttl="1000w")
    root = remote.requester.root
    git(root, "checkout", "-q", "-b", STALE, "main")
    remote.requester.write("policies/main.yaml", doc)
    remote.requester.write("grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    remote.requester.commit("ask, and move the deadlines")
    git(root, "push", "-q", "origin", STALE)
    git(root, "checkout", "-q", "main")
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)))
    queue(remote, "--act")
    assert gh.writes()[0] == ["pr", "edit", "11", "--add-reviewer", "acme/oncall-leads"]
    assert "mallory" not in json.dumps(gh.calls())
