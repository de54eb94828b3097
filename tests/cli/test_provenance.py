"""Provenance from real git history: the commit that wrote a grant's current content, its
author, and the merge or squash commit (with its pull-request number) that brought it."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from reconciler.snapshot import read_snapshot
from tests.helpers import AccessRepo, git, grant, policy

ALICE = "grants/db1/alice.yaml"
ALICE_ID = {"GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.com"}


def repo_with_policy(tmp_path: Path) -> AccessRepo:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", policy())
    repo.commit("policy")
    return repo


def provenance(repo: AccessRepo, path: str = ALICE):  # type: ignore[no-untyped-def]
    snap = read_snapshot(repo.root, "HEAD", datetime.now(timezone.utc))
    [found] = [g for g in snap.grants if g.path == path]
    return found.provenance


def test_direct_commit_is_its_own_merge(tmp_path: Path) -> None:
    repo = repo_with_policy(tmp_path)
    repo.write(ALICE, grant())
    sha = repo.commit("Grant alice (#34)", **ALICE_ID)  # a squash merge's message
    repo.write("README.md", "unrelated\n")
    repo.commit("docs")
    prov = provenance(repo)
    assert (prov.commit, prov.author, prov.author_email) == (sha, "Alice", "alice@example.com")
    assert (prov.merge_commit, prov.pull_request) == (sha, 34)


def test_merge_commit_names_the_pull_request(tmp_path: Path) -> None:
    repo = repo_with_policy(tmp_path)
    git(repo.root, "checkout", "-q", "-b", "access/alice")
    repo.write(ALICE, grant())
    branch_commit = repo.commit("alice needs access", **ALICE_ID)
    git(repo.root, "checkout", "-q", "main")
    repo.write("policies/other.yaml", "people:\n  dave: {email: dave@example.com}\n")
    repo.commit("meanwhile on main")
    git(repo.root, "merge", "-q", "--no-ff", "access/alice", "-m",
        "Merge pull request #12 from alice-gh/access/alice")
    merge = git(repo.root, "rev-parse", "HEAD")
    prov = provenance(repo)
    assert (prov.commit, prov.author) == (branch_commit, "Alice")
    assert (prov.merge_commit, prov.pull_request) == (merge, 12)


def test_an_edit_is_the_new_approval(tmp_path: Path) -> None:
    repo = repo_with_policy(tmp_path)
    repo.write(ALICE, grant(reason="first"))
    repo.commit("first", **ALICE_ID)
    repo.write(ALICE, grant(reason="extended"))
    second = repo.commit("extend (#40)", GIT_AUTHOR_NAME="Bob", GIT_AUTHOR_EMAIL="b@x")
    prov = provenance(repo)
    assert (prov.commit, prov.author, prov.pull_request) == (second, "Bob", 40)


def test_uncommitted_edit_is_ignored_by_apply_and_plan(tmp_path: Path) -> None:
    repo = repo_with_policy(tmp_path)
    repo.write(ALICE, grant(reason="approved text"))
    repo.commit("grant", **ALICE_ID)
    repo.write(ALICE, grant(reason="edited after merge", access="readwrite"))
    snap = read_snapshot(repo.root, "HEAD", datetime.now(timezone.utc))
    [found] = snap.grants
    assert (found.reason, found.access) == ("approved text", "readonly")
