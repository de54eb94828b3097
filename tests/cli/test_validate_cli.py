"""`jitgrant validate` on temporary git repositories."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, stamp, utc

PROBLEM_LINE = re.compile(r"^[^:\n]+:\d+: .+$")


def test_valid_repository_exits_0_with_a_summary(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant())
    repo.commit("grant")
    result = jitgrant("validate", "--repo", str(repo.root))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.strip() == "1 valid grant file (1 active now), 0 invalid, 1 target"


def test_invalid_repository_exits_1_with_path_line_problems_on_stderr(repo: AccessRepo) -> None:
    bad = grant(access="nope")
    bad["colour"] = "red"
    repo.write("grants/db1/bad.yaml", bad)
    repo.write("grants/db1/good.yaml", grant())
    result = jitgrant("validate", "--repo", str(repo.root))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines == ["grants/db1/bad.yaml:6: unknown key 'colour'"]
    assert all(PROBLEM_LINE.match(line) for line in lines)
    assert result.stdout.startswith("invalid: 1 valid grant file (")
    assert "1 invalid" in result.stdout


def test_policy_problems_are_reported_too(repo: AccessRepo) -> None:
    repo.write("policies/extra.yaml", "targets:\n  db1:\n    engine: oracle\n    dsn_env: X\n")
    result = jitgrant("validate", "--repo", str(repo.root))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    # Files are merged in name order: extra.yaml came first.
    assert "policies/main.yaml:2: targets.db1 is defined twice: in policies/extra.yaml:2 and " \
           "here" in lines
    assert "policies/extra.yaml:3: targets.db1.engine: must be one of: postgres, mysql" in lines
    assert all(PROBLEM_LINE.match(line) for line in lines)


def test_json_format_is_a_list_of_problems(repo: AccessRepo) -> None:
    repo.write("grants/db1/bad.yaml", grant(grantee="zed"))
    repo.write("grants/db1/worse.yaml", "grantee: alice\nexpires: soon\n")
    result = jitgrant("validate", "--repo", str(repo.root), "--format", "json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)
    assert isinstance(problems, list) and problems
    for p in problems:
        assert {"path", "line", "message"} <= set(p)
        assert isinstance(p["line"], int) and p["line"] >= 1
    assert {"path": "grants/db1/bad.yaml", "line": 1, "message": "grantee: 'zed' is not in people",
            "severity": "error"} in problems
    assert {p["path"] for p in problems} == {"grants/db1/bad.yaml", "grants/db1/worse.yaml"}


def test_json_format_of_a_valid_repository_is_an_empty_list(repo: AccessRepo) -> None:
    result = jitgrant("validate", "--repo", str(repo.root), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_github_format_gives_error_and_warning_annotations(repo: AccessRepo) -> None:
    repo.write("grants/db1/carol.yaml", grant(grantee="carol"))
    repo.commit("carol's old grant")
    repo.write("grants/db1/bad.yaml", grant(access="nope"))
    result = jitgrant("validate", "--repo", str(repo.root), "--format", "github")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "::error file=grants/db1/bad.yaml,line=3::access: unknown access level 'nope'",
        "::warning file=grants/db1/carol.yaml,line=1::grantee: 'carol' is not active; the grant "
        "is inactive and the file can be deleted",
    ]


def test_warnings_alone_do_not_fail(repo: AccessRepo) -> None:
    repo.write("grants/db1/carol.yaml", grant(grantee="carol"))
    repo.commit("carol's old grant")
    result = jitgrant("validate", "--repo", str(repo.root))
    assert result.exit_code == 0
    assert result.stderr.startswith("grants/db1/carol.yaml:1: warning: grantee: 'carol' is not")


def test_uncommitted_grant_counts_as_new(repo: AccessRepo) -> None:
    repo.write("grants/db1/carol.yaml", grant(grantee="carol"))
    result = jitgrant("validate", "--repo", str(repo.root))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["grants/db1/carol.yaml:1: grantee: 'carol' is not active"]


def test_base_marks_only_what_the_branch_changed(repo: AccessRepo) -> None:
    old = utc(hours=-3)
    repo.write("grants/db1/old-carol.yaml", grant(grantee="carol"))
    repo.write("grants/db1/old-expired.yaml", grant(expires=utc(hours=-1)))
    repo.commit("old grants", GIT_COMMITTER_DATE=stamp(old), GIT_AUTHOR_DATE=stamp(old))
    git(repo.root, "checkout", "-q", "-b", "feature")
    repo.write("grants/db1/new-carol.yaml", grant(grantee="carol"))
    repo.commit("new grant for carol")
    plain = jitgrant("validate", "--repo", str(repo.root))
    assert plain.exit_code == 0, plain.stderr
    result = jitgrant("validate", "--repo", str(repo.root), "--base", "main")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "grants/db1/new-carol.yaml:1: grantee: 'carol' is not active" in lines
    assert [line for line in lines if "warning" not in line] == [
        "grants/db1/new-carol.yaml:1: grantee: 'carol' is not active"]
    assert any(line.startswith("grants/db1/old-carol.yaml:1: warning: ") for line in lines)


def test_base_rejects_a_new_grant_whose_expiry_is_past(repo: AccessRepo) -> None:
    when = utc(hours=-2)
    git(repo.root, "checkout", "-q", "-b", "feature")
    repo.write("grants/db1/late.yaml", grant(expires=utc(minutes=-30)))
    repo.commit("opened in time, merged too late", GIT_COMMITTER_DATE=stamp(when),
                GIT_AUTHOR_DATE=stamp(when))
    assert jitgrant("validate", "--repo", str(repo.root)).exit_code == 0
    result = jitgrant("validate", "--repo", str(repo.root), "--base", "main")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["grants/db1/late.yaml:4: expires: already in the past"]


def test_rev_validates_a_commit_not_the_working_tree(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant())
    repo.commit("grant")
    repo.write("grants/db1/alice.yaml", grant(access="nope"))
    assert jitgrant("validate", "--repo", str(repo.root)).exit_code == 1
    result = jitgrant("validate", "--repo", str(repo.root), "--rev", "HEAD")
    assert result.exit_code == 0, result.stderr


def test_symlink_committed_to_outside_the_repository_is_rejected(repo: AccessRepo) -> None:
    (repo.root / "grants" / "db1").mkdir(parents=True)
    (repo.root / "grants" / "db1" / "link.yaml").symlink_to("../../../outside.yaml")
    repo.commit("a link out")
    result = jitgrant("validate", "--repo", str(repo.root), "--rev", "HEAD")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "grants/db1/link.yaml:1: symlink leads outside the repository"]


def test_oversized_committed_file_is_rejected(repo: AccessRepo) -> None:
    repo.write("grants/db1/big.yaml", b"reason: " + b"x" * (2 * 1024 * 1024) + b"\n")
    repo.commit("big")
    for rev in ((), ("--rev", "HEAD")):
        result = jitgrant("validate", "--repo", str(repo.root), *rev)
        assert result.exit_code == 1
        [line] = result.stderr.splitlines()
        assert line.startswith("grants/db1/big.yaml:1: file is ")
        assert line.endswith("bytes, over the limit of 1048576")


def test_hostile_file_name_cannot_inject_annotations(repo: AccessRepo) -> None:
    name = "grants/db1/x,line=9\n::warning file=evil::forged.yaml"
    repo.write(name, grant(access="nope"))
    repo.commit("evil name")
    github = jitgrant("validate", "--repo", str(repo.root), "--format", "github")
    assert len(github.stdout.splitlines()) == 1
    assert "::warning" not in github.stdout
    text = jitgrant("validate", "--repo", str(repo.root))
    assert len(text.stderr.splitlines()) == 1


def test_expired_grant_stays_valid_in_a_shallow_clone(repo: AccessRepo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = utc(days=-30)
    repo.write("grants/db1/old.yaml", grant(expires=utc(days=-30, hours=1)))
    repo.commit("old grant", GIT_COMMITTER_DATE=stamp(old), GIT_AUTHOR_DATE=stamp(old))
    repo.write("README.md", "later work\n")
    repo.commit("later")
    assert jitgrant("validate", "--repo", str(repo.root)).exit_code == 0
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.root}", str(shallow))
    result = jitgrant("validate", "--repo", str(shallow))
    assert result.exit_code == 0, result.stderr


def test_validate_as_a_real_process(repo: AccessRepo) -> None:
    repo.write("grants/db1/bad.yaml", grant(access="nope"))
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", "--repo",
                           str(repo.root)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["grants/db1/bad.yaml:3: access: unknown access level "
                                        "'nope'"]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("args", [["-h"], ["validate", "-h"], ["request", "-h"],
                                  ["extend", "-h"], ["standing", "-h"]])
def test_dash_h_is_help(args: list[str]) -> None:
    """Issue 12, finding 4: -h is --help, on the group and on every command."""
    result = jitgrant(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Usage: ") and result.stderr == ""
    assert "-h, --help" in result.stdout
