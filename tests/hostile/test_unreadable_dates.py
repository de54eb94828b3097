"""A commit object written by hand (git hash-object --literally) with a date git prints as a
year past 9999, or cannot print at all: a pull request merged with such a commit on its branch
must not make every later validate, plan and apply an internal error (exit 3), which would
stop every revocation. Such a date is read as the far future: the date-forgery rules then
refuse it as for any commit dated in the future (tests/hostile/test_git_dates.py). A real git
repository; the machine's PostgreSQL is not needed (validate and plan --offline)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy, utc

ALICE = "grants/db1/alice.yaml"
BOB = "grants/db1/bob.yaml"


def crafted_commit(repo: AccessRepo, date: str, message: str) -> str:
    """A commit of the index's tree on HEAD, dated `date` (raw seconds), made by hand."""
    root = repo.root
    git(root, "add", "-A")
    tree = git(root, "write-tree")
    parent = git(root, "rev-parse", "HEAD")
    body = (f"tree {tree}\nparent {parent}\nauthor M <m@example.com> {date} +0000\n"
            f"committer M <m@example.com> {date} +0000\n\n{message}\n")
    return subprocess.run(["git", "-C", str(root), "hash-object", "-t", "commit", "-w",
                           "--stdin", "--literally"], input=body, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.parametrize(("date", "refused"), [("99999999999999", True),  # year 3170843
                                               ("-5", True),  # git prints no date at all
                                               ("18446744073709551615", False)])  # 1970
def test_a_merged_commit_with_an_unreadable_date(tmp_path: Path, date: str,
                                                 refused: bool) -> None:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", policy())
    repo.write(ALICE, grant("alice", expires=utc(hours=2)))
    repo.commit("policy, alice")
    git(repo.root, "checkout", "-q", "-b", "mallory")
    repo.write(BOB, grant("bob", expires=utc(hours=2)))
    sha = crafted_commit(repo, date, "bob asks")
    git(repo.root, "reset", "-q", "--hard", sha)
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", sha, "-m", "Merge pull request #5 from x/mallory")
    result = jitgrant("validate", "--repo", str(repo.root))
    assert result.exit_code in (0, 1), result.output
    assert "internal error" not in result.output + result.stderr
    # refused as a date in the future; git's 1970 is in the past: the merge's date counts
    assert (f"{BOB}:" in result.output + result.stderr) is refused
    plan = jitgrant("plan", "--repo", str(repo.root), "--offline")
    assert plan.exit_code in (0, 1, 2), plan.output
    assert "internal error" not in plan.output + plan.stderr
