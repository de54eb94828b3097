"""Commit dates are set by whoever makes the commit: none may lengthen a grant (issue 11,
finding 4). A real git repository, the real commands, the machine's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Namespace, jitgrant
from tests.helpers import AccessRepo, git, grant, stamp, utc

ALICE = "grants/db1/alice.yaml"
FUTURE = "2031-01-01T00:00:00Z"
FORGED = {"GIT_COMMITTER_DATE": FUTURE, "GIT_AUTHOR_DATE": FUTURE}


@pytest.fixture
def repo(tmp_path: Path, namespace: Namespace) -> AccessRepo:
    """Main holds a policy whose readonly level is auto_approve, on our PostgreSQL namespace."""
    r = AccessRepo(tmp_path / "repo")
    data = namespace.policy()
    data["access"]["readonly"]["auto_approve"] = True
    r.write("policies/main.yaml", data)
    r.commit("policy")
    return r


def forged_branch(repo: AccessRepo, expires: str, **dates: str) -> None:
    """alice's pull request branch: one commit of a grant, dated as `dates` say."""
    git(repo.root, "checkout", "-q", "-b", "access/alice")
    data = grant(expires=utc(hours=2))
    data["expires"] = expires
    repo.write(ALICE, data)
    repo.commit("alice needs access", **dates)


def validate_pr(repo: AccessRepo) -> tuple[int, str]:
    result = jitgrant("validate", "--repo", str(repo.root), "--base", "main",
                      "--pr-author", "alice-gh", "--auto-approvable")
    return result.exit_code, result.output + result.stderr


@pytest.mark.parametrize("dates", [FORGED, {"GIT_COMMITTER_DATE": FUTURE}],
                         ids=["both-dates", "committer-date"])
def test_a_future_commit_date_cannot_stretch_a_grant_in_the_pull_request(
        repo: AccessRepo, dates: dict[str, str]) -> None:
    # Before the fix: the 8h lifetime counted from 2031-01-01T00:00, so this passed and was
    # reported auto-approvable.
    forged_branch(repo, "2031-01-01T08:00:00Z", **dates)
    code, output = validate_pr(repo)
    assert code == 1, output
    assert "\nauto-approvable: " not in "\n" + output
    assert "not auto-approvable" in output
    assert f"{ALICE}:" in output and "in the future" in output


def test_a_future_commit_date_is_refused_on_its_own(repo: AccessRepo) -> None:
    # Even when the grant itself is short, a commit from the future is not believed.
    forged_branch(repo, stamp(utc(hours=2)), GIT_COMMITTER_DATE=FUTURE)
    code, output = validate_pr(repo)
    assert code == 1 and "in the future" in output, output


def apply(repo: AccessRepo, namespace: Namespace) -> str:
    result = jitgrant("apply", "--repo", str(repo.root), "--no-commit", env=namespace.env)
    return result.output + result.stderr


@pytest.mark.parametrize("merge", ["fast-forward", "merge-commit"])
def test_apply_creates_no_login_valid_until_2031(repo: AccessRepo, namespace: Namespace,
                                                 merge: str) -> None:
    forged_branch(repo, "2031-01-01T08:00:00Z", **FORGED)
    git(repo.root, "checkout", "-q", "main")
    if merge == "fast-forward":  # the forged commit itself is on the first-parent line
        git(repo.root, "merge", "-q", "--ff-only", "access/alice")
    else:  # the forge's merge commit, dated now: the lifetime counts from it
        git(repo.root, "merge", "-q", "--no-ff", "access/alice", "-m",
            "Merge pull request #1 from alice-gh/access/alice")
    offline = jitgrant("plan", "--repo", str(repo.root), "--offline")
    assert "create" not in offline.output, offline.output
    output = apply(repo, namespace)
    assert f"{ALICE}:" in output, output
    assert namespace.role(namespace.login()) is None


def test_a_merge_commit_dated_in_the_future_counts_from_now(repo: AccessRepo,
                                                            namespace: Namespace) -> None:
    forged_branch(repo, "2031-01-01T08:00:00Z")
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", "access/alice", "-m", "merge",
        env={"GIT_COMMITTER_DATE": FUTURE})
    output = apply(repo, namespace)
    assert "in the future" in output, output
    assert namespace.role(namespace.login()) is None


def test_a_past_date_is_ignored_in_the_pull_request(repo: AccessRepo) -> None:
    # Backdating can only make a grant look longer, never shorter: in the pull request the
    # lifetime counts from now whatever the commit says.
    forged_branch(repo, stamp(utc(hours=9)), GIT_COMMITTER_DATE="2020-01-01T00:00:00Z",
                  GIT_AUTHOR_DATE="2020-01-01T00:00:00Z")
    code, output = validate_pr(repo)
    assert code == 1 and "over the 8h allowed" in output, output


def test_a_past_date_cannot_make_an_old_grant_look_new(repo: AccessRepo,
                                                       namespace: Namespace) -> None:
    # A grant that ended in 2020, in a commit dated then: in the pull request it is new and
    # already past; pushed straight to main, its lifetime counts from its (past) arrival,
    # so it is inactive, never a login.
    old = {"GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z",
           "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z"}
    forged_branch(repo, "2020-01-01T08:00:00Z", **old)
    code, output = validate_pr(repo)
    assert code == 1 and "already in the past" in output, output
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--ff-only", "access/alice")
    apply(repo, namespace)
    assert namespace.role(namespace.login()) is None


def test_a_backdated_commit_pushed_to_main_counts_from_its_date(repo: AccessRepo,
                                                                namespace: Namespace) -> None:
    # Three days back, ending in two hours: 3 days 2 hours, over the 8h of readonly.
    forged_branch(repo, stamp(utc(hours=2)), GIT_COMMITTER_DATE=stamp(utc(days=-3)))
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--ff-only", "access/alice")
    output = apply(repo, namespace)
    assert "over the 8h allowed" in output, output
    assert namespace.role(namespace.login()) is None


def test_an_honest_pull_request_still_passes_and_is_granted(repo: AccessRepo,
                                                            namespace: Namespace) -> None:
    forged_branch(repo, stamp(utc(hours=2)))
    code, output = validate_pr(repo)
    assert code == 0 and "\nauto-approvable: " in "\n" + output, output
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", "access/alice", "-m", "merge")
    apply(repo, namespace)
    assert namespace.role(namespace.login()) is not None
