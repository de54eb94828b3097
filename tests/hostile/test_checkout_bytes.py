"""The pull-request checks judge the bytes apply reads (issue 11, finding 5): git attributes
make a checkout say something else than the commit, a submodule holds files apply never reads.
Real repositories, cloned as CI clones them."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, policy, stamp, utc

GRANT = "grants/db1/x.yaml"


def two_faced_grant() -> bytes:
    """Committed (what apply reads): alice, readwrite. Checked out through UTF-7, where `"`
    and `#` are encoded as text: bob, readonly, alice's lines folded into a quoted ticket."""
    return (f'reason: "INC-1 r\ngrantee: bob\naccess: readonly\nticket: \'"\n'
            f"grantee: alice\naccess: readwrite #'\ntarget: db1\n"
            f"expires: {stamp(utc(hours=1))}\n").encode()


def base_repo(tmp_path: Path) -> AccessRepo:
    repo = AccessRepo(tmp_path / "origin")
    data = policy()
    data["access"]["readonly"]["auto_approve"] = True
    repo.write("policies/main.yaml", data)
    repo.commit("policy")
    git(repo.root, "checkout", "-q", "-b", "pr")
    return repo


def clone(repo: AccessRepo, tmp_path: Path) -> Path:
    """A fresh checkout of the pull request's branch with main beside it, as CI makes."""
    work = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "-b", "pr", str(repo.root), str(work))
    git(work, "branch", "-q", "main", "origin/main")
    return work


def validate_pr(root: Path, author: str = "bob-gh") -> tuple[int, str]:
    result = jitgrant("validate", "--repo", str(root), "--base", "main", "--pr-author", author,
                      "--auto-approvable")
    return result.exit_code, result.output + result.stderr


def commit_with_attributes(repo: AccessRepo, attributes_path: str, line: str) -> None:
    repo.write(GRANT, two_faced_grant())
    git(repo.root, "add", GRANT)  # staged before the attribute exists: the blob is UTF-8
    repo.write(attributes_path, line)
    git(repo.root, "add", attributes_path)
    git(repo.root, "commit", "-q", "-m", "grant")


def test_an_encoding_attribute_under_grants_cannot_fool_the_pull_request_checks(
        tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    commit_with_attributes(repo, "grants/.gitattributes", "*.yaml working-tree-encoding=UTF-7\n")
    work = clone(repo, tmp_path)
    assert b"grantee: bob" in (work / GRANT).read_bytes()  # the trick works on this git
    assert git(work, "status", "--porcelain") == ""
    # Before the fix: exit 0 and auto-approvable, bob asking for bob's readonly access.
    code, output = validate_pr(work)
    assert code == 1, output
    assert "grants/.gitattributes:1: " in output
    assert f"{GRANT}:1: the checked-out file differs from the committed one" in output
    assert "'alice' is not the pull request's author" in output  # the committed bytes judged
    assert "not auto-approvable" in output and "\nauto-approvable: " not in "\n" + output


def test_a_root_attributes_file_aimed_at_grants_is_caught_too(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    commit_with_attributes(repo, ".gitattributes", "grants/** working-tree-encoding=UTF-7\n")
    work = clone(repo, tmp_path)
    code, output = validate_pr(work)
    assert code == 1, output
    assert f"{GRANT}:1: the checked-out file differs from the committed one" in output
    assert "'alice' is not the pull request's author" in output


def test_apply_and_validate_of_the_commit_name_the_attributes_file(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    commit_with_attributes(repo, "grants/.gitattributes", "*.yaml working-tree-encoding=UTF-7\n")
    work = clone(repo, tmp_path)
    result = jitgrant("validate", "--repo", str(work), "--rev", "HEAD")
    assert result.exit_code == 1
    assert "grants/.gitattributes:1: " in result.stderr


def test_a_submodule_under_grants_is_an_error_and_never_auto_approvable(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    inner = AccessRepo(tmp_path / "inner")
    inner.write("x.yaml", "grantee: bob\n")
    sha = inner.commit("inner")
    git(repo.root, "update-index", "--add", "--cacheinfo", f"160000,{sha},grants/db1/sub")
    git(repo.root, "commit", "-q", "-m", "a gitlink")
    for root, rev in ((repo.root, ()), (repo.root, ("--rev", "HEAD"))):
        result = jitgrant("validate", "--repo", str(root), "--base", "main", "--pr-author",
                          "bob-gh", "--auto-approvable", *rev)
        assert result.exit_code == 1, result.output
        assert "grants/db1/sub:1: a submodule under grants/ is not allowed" in result.stderr
        assert "not auto-approvable" in result.stderr


def test_an_honest_checkout_and_uncommitted_edits_are_read_as_before(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    repo.write(GRANT, {"grantee": "bob", "target": "db1", "access": "readonly",
                       "expires": stamp(utc(hours=1)), "reason": "INC-1 r"})
    repo.commit("grant")
    work = clone(repo, tmp_path)
    code, output = validate_pr(work)
    assert code == 0 and "\nauto-approvable: " in "\n" + output, output
    # An edit not yet committed is what a requester checks before committing it.
    (work / GRANT).write_text((work / GRANT).read_text().replace("bob", "alice"))
    code, output = validate_pr(work)
    assert code == 1 and "'alice' is not the pull request's author" in output, output


def test_a_filter_attribute_aimed_at_grants_is_caught_too(tmp_path: Path) -> None:
    """A smudge filter rewrites the checkout and its clean filter undoes it, so git reports the
    file unchanged: the committed bytes (alice's readwrite) are judged, not bob's readonly."""
    repo = base_repo(tmp_path)
    repo.write(GRANT, {"grantee": "alice", "target": "db1", "access": "readwrite",
                       "expires": stamp(utc(hours=1)), "reason": "INC-1 r"})
    repo.write(".gitattributes", "grants/** filter=twist\n")
    repo.commit("grant")
    work = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "-b", "pr",
        "-c", "filter.twist.smudge=sed -e s/alice/bob/ -e s/readwrite/readonly/",
        "-c", "filter.twist.clean=sed -e s/bob/alice/ -e s/readonly/readwrite/",
        str(repo.root), str(work))
    git(work, "branch", "-q", "main", "origin/main")
    assert b"grantee: bob" in (work / GRANT).read_bytes()  # the trick works on this git
    assert git(work, "status", "--porcelain") == ""
    code, output = validate_pr(work)
    assert code == 1, output
    assert f"{GRANT}:1: the checked-out file differs from the committed one" in output
    assert "'alice' is not the pull request's author" in output
