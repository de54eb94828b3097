"""`jitgrant auto-approve` against a local stand-in for `gh` (an executable first on PATH that
records its arguments and answers `pr view` and the teams query with canned JSON): the calls an
auto-approvable pull request gets, and none for one that is not."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy

STAND_IN = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["GH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["pr", "view"]:
    print(os.environ["GH_PR_JSON"])
elif args[:2] == ["api", "graphql"]:  # with --jq (the workflow's shell step): one per line
    print(os.environ["GH_TEAMS_LINES" if "--jq" in args else "GH_TEAMS_JSON"])
sys.exit(int(os.environ.get("GH_EXIT", "0")))
"""


class Gh:
    """The stand-in: where it logs, and what it answers."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "gh").write_text(STAND_IN)
        (bin_dir / "gh").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        self.log = tmp_path / "gh.log"
        monkeypatch.setenv("GH_LOG", str(self.log))
        self.monkeypatch = monkeypatch
        self.answer(author="alice-gh", head="", teams=[])

    def answer(self, author: str, head: str, teams: list[str], state: str = "OPEN") -> None:
        self.monkeypatch.setenv("GH_PR_JSON", json.dumps(
            {"author": {"login": author}, "headRefOid": head, "state": state}))
        nodes = [{"combinedSlug": t} for t in teams]
        self.monkeypatch.setenv("GH_TEAMS_LINES", "\n".join(teams))
        self.monkeypatch.setenv("GH_TEAMS_JSON", json.dumps(
            {"data": {"organization": {"teams": {"nodes": nodes}}}}))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def writes(self) -> list[list[str]]:
        return [c for c in self.calls() if c[:2] != ["pr", "view"] and "graphql" not in c]


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gh:
    return Gh(tmp_path, monkeypatch)


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    r = AccessRepo(tmp_path / "repo")
    pol: dict[str, Any] = policy(requesters_for_others=["@acme/oncall-leads"])
    pol["access"]["readonly"]["auto_approve"] = True
    r.write("policies/main.yaml", pol)
    r.write("grants/db1/old.yaml", grant("alice"))
    r.commit("policy")
    git(r.root, "checkout", "-q", "-b", "request")
    return r


def auto_approve(repo: AccessRepo, *extra: str) -> Result:
    sha = git(repo.root, "rev-parse", "HEAD")
    return jitgrant("auto-approve", "--repo", str(repo.root), "--base", "main", "--pr", "7",
                    "--sha", sha, "--org", "acme", *extra)


def expected_writes(sha: str, method: str = "squash") -> list[list[str]]:
    return [["api", "--method", "POST", "repos/{owner}/{repo}/pulls/7/reviews",
             "-f", f"commit_id={sha}", "-f", "event=APPROVE", "-f",
             "body=Auto-approved by jitgrant: only grants of auto_approve levels, or removals."],
            ["pr", "merge", "7", "--auto", f"--{method}", "--match-head-commit", sha]]


def test_an_auto_approvable_pull_request_is_approved_and_set_to_merge(
        repo: AccessRepo, gh: Gh) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    sha = repo.commit("alice asks")
    gh.answer(author="alice-gh", head=sha, teams=[])
    result = auto_approve(repo, "--merge-method", "rebase")
    assert result.exit_code == 0, result.stderr
    assert gh.calls() == [["pr", "view", "7", "--json", "author,headRefOid,state"],
                          gh.calls()[1], *expected_writes(sha, "rebase")]
    assert gh.calls()[1][:2] == ["api", "graphql"] and "login=alice-gh" in gh.calls()[1]
    assert "approved" in result.stdout


def test_a_removal_is_auto_approvable(repo: AccessRepo, gh: Gh) -> None:
    repo.remove("grants/db1/old.yaml")
    sha = repo.commit("clean up")
    gh.answer(author="bob-gh", head=sha, teams=[])
    assert auto_approve(repo).exit_code == 0
    assert gh.writes() == expected_writes(sha)


@pytest.mark.parametrize("change", ["readwrite", "policy", "invalid"])
def test_what_is_not_auto_approvable_makes_no_call_at_all(repo: AccessRepo, gh: Gh,
                                                          change: str) -> None:
    if change == "readwrite":
        repo.write("grants/db1/alice.yaml", grant("alice", access="readwrite"))
    elif change == "policy":
        repo.write("policies/more.yaml", {"people": {"dan": {"email": "dan@example.com"}}})
    else:
        repo.write("grants/db1/alice.yaml", {"grantee": "alice"})
    sha = repo.commit("a change people must review")
    gh.answer(author="alice-gh", head=sha, teams=[])
    result = auto_approve(repo)
    assert result.exit_code == 0, result.stderr
    assert gh.calls() == []
    assert "not auto-approvable: " in result.stdout and "left for a review" in result.stdout


def test_a_grant_for_someone_else_needs_the_authors_team(repo: AccessRepo, gh: Gh) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    sha = repo.commit("alice asks for bob")
    gh.answer(author="alice-gh", head=sha, teams=["acme/backend"])
    result = auto_approve(repo)
    assert result.exit_code == 0 and gh.writes() == []
    assert "is not the pull request's author" in result.stdout
    gh.log.unlink()
    gh.answer(author="alice-gh", head=sha, teams=["acme/oncall-leads"])
    assert auto_approve(repo).exit_code == 0
    assert gh.writes() == expected_writes(sha)


@pytest.mark.parametrize("state", ["moved", "MERGED"])
def test_a_pull_request_that_moved_on_is_not_approved(repo: AccessRepo, gh: Gh,
                                                      state: str) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    sha = repo.commit("alice asks")
    gh.answer(author="alice-gh", head="f" * 40 if state == "moved" else sha, teams=[],
              state="OPEN" if state == "moved" else state)
    result = auto_approve(repo)
    assert result.exit_code == 0 and gh.writes() == []
    assert "not auto-approvable: the pull request" in result.stdout


def test_a_failing_gh_is_one_line(repo: AccessRepo, gh: Gh,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    repo.commit("alice asks")
    monkeypatch.setenv("GH_EXIT", "1")
    result = auto_approve(repo)
    assert result.exit_code == 1
    assert result.stderr.startswith("jitgrant: error: gh pr view failed (exit 1)")
    assert len(result.stderr.splitlines()) == 1 and gh.writes() == []


def test_the_options_come_from_the_workflows_environment(repo: AccessRepo, gh: Gh) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    sha = repo.commit("alice asks")
    gh.answer(author="alice-gh", head=sha, teams=[])
    env = {"JITGRANT_PR": "7", "JITGRANT_HEAD_SHA": sha, "JITGRANT_ORG": "acme"}
    result = jitgrant("auto-approve", "--repo", str(repo.root), "--base", "main", env=env)
    assert result.exit_code == 0, result.stderr
    assert gh.writes() == expected_writes(sha)


def test_the_command_is_hidden_from_help() -> None:
    assert "auto-approve" not in jitgrant("--help").stdout
