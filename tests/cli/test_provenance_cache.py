"""The provenance cache (.git/jitgrant/provenance.json) and the split `git log` only save
time: at every step of a history they give exactly what one full walk gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler import gitrepo, parallel
from reconciler.model import Provenance
from tests.helpers import AccessRepo, git, grant, policy

BOB = {"GIT_AUTHOR_NAME": "Bob", "GIT_AUTHOR_EMAIL": "bob@example.com"}


def cache(repo: AccessRepo) -> Path:
    return repo.root / ".git" / "jitgrant" / "provenance.json"


def walk(repo: AccessRepo) -> dict[str, Provenance]:
    handle = gitrepo.open_repo(repo.root)
    commit = gitrepo.resolve(handle, "HEAD")
    files = {f.path: f.blob for f in gitrepo.read_tree(handle, commit, ["grants"]) if f.blob}
    return gitrepo.provenance(handle, commit, files)


def full_walk(repo: AccessRepo) -> dict[str, Provenance]:
    saved = cache(repo).read_bytes() if cache(repo).exists() else None
    cache(repo).unlink(missing_ok=True)
    try:
        return walk(repo)
    finally:
        if saved is not None:
            cache(repo).write_bytes(saved)


def check(repo: AccessRepo) -> dict[str, Provenance]:
    """The cached walk equals the full walk; then the cache moves to HEAD."""
    expected = full_walk(repo)
    assert walk(repo) == expected
    return expected


def grant_file(repo: AccessRepo, name: str, reason: str = "INC-1 look") -> None:
    repo.write(f"grants/db1/{name}.yaml", grant(grantee="alice", reason=reason))


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", policy())
    grant_file(repo, "g0")
    repo.commit("start (#1)")
    walk(repo)
    assert cache(repo).exists()
    return repo


def test_every_kind_of_step_since_the_cached_commit(repo: AccessRepo) -> None:
    grant_file(repo, "g1")
    repo.commit("direct (#2)", **BOB)
    check(repo)
    git(repo.root, "checkout", "-q", "-b", "access/bob")
    grant_file(repo, "g2")
    repo.commit("on a branch", **BOB)
    git(repo.root, "checkout", "-q", "main")
    grant_file(repo, "g0", reason="INC-2 edited on main")
    repo.commit("edit (#3)")
    git(repo.root, "merge", "-q", "--no-ff", "access/bob", "-m", "Merge pull request #4 from b")
    found = check(repo)
    assert found["grants/db1/g2.yaml"].pull_request == 4
    assert found["grants/db1/g0.yaml"].pull_request == 3
    repo.remove("grants/db1/g1.yaml")
    repo.commit("cleanup")
    check(repo)
    grant_file(repo, "g1")  # the same content again: the restoring commit is the writer now
    restored = repo.commit("restore (#5)")
    assert check(repo)["grants/db1/g1.yaml"].commit == restored


def test_a_cached_commit_that_came_in_as_a_merged_branch(repo: AccessRepo) -> None:
    git(repo.root, "checkout", "-q", "-b", "side")
    grant_file(repo, "g1")
    repo.commit("side work")
    walk(repo)  # the cache now sits on the side branch
    git(repo.root, "checkout", "-q", "main")
    grant_file(repo, "g2")
    repo.commit("main work")
    git(repo.root, "merge", "-q", "--no-ff", "side", "-m", "Merge pull request #7 from side")
    assert check(repo)["grants/db1/g1.yaml"].pull_request == 7


def test_rewritten_history_and_a_damaged_cache_are_ignored(repo: AccessRepo) -> None:
    grant_file(repo, "g1")
    repo.commit("one")
    walk(repo)
    git(repo.root, "reset", "-q", "--hard", "HEAD~1")
    grant_file(repo, "g1", reason="INC-9 other")
    repo.commit("rewritten (#8)")
    git(repo.root, "reflog", "expire", "--expire=now", "--all")
    git(repo.root, "gc", "-q", "--prune=now")
    assert check(repo)["grants/db1/g1.yaml"].pull_request == 8
    for damage in (b"", b"{", b'{"version": 1, "commit": "x", "files": {"a": 1}}', b"[]"):
        cache(repo).write_bytes(damage)
        assert walk(repo) == full_walk(repo)


def test_a_clone_without_the_cache_and_a_read_only_git_dir(repo: AccessRepo,
                                                         tmp_path: Path) -> None:
    grant_file(repo, "g1")
    repo.commit("more")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.root), str(clone))
    assert not (clone / ".git" / "jitgrant").exists()
    other = AccessRepo(clone)  # (git init on a clone changes nothing)
    assert walk(other) == full_walk(repo)
    shutil.rmtree(clone / ".git" / "jitgrant")
    (clone / ".git" / "jitgrant").write_text("a file where the folder would be")
    assert walk(other) == full_walk(repo)


def test_the_split_log_reads_the_same_history(repo: AccessRepo,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(1, 8):
        grant_file(repo, f"g{index}")
        repo.commit(f"grant {index} (#{10 + index})")
    whole = full_walk(repo)
    monkeypatch.setattr(gitrepo, "SPLIT_LOG_FROM", 2)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    assert full_walk(repo) == whole
