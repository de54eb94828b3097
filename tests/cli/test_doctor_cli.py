"""`jitgrant doctor` as a command: text lines with their fixes, the audit branch checked with
`git push --dry-run` against a local bare origin (a real git remote, nothing pushed), and the
exit code that says the worst found."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.doctor import Finding, exit_code
from tests.cli.conftest import PG_DSN, jitgrant
from tests.helpers import AccessRepo, git, policy


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", policy(dsn_env="JG_DOCTOR", groups=("pg_monitor",)))
    r.commit("policy")
    return r


def test_healthy_with_a_superuser_and_a_pushable_origin(repo: AccessRepo,
                                                        tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(repo.root, "remote", "add", "origin", str(origin))
    before = git(repo.root, "ls-remote", "origin")
    result = jitgrant("doctor", "--repo", str(repo.root), env={"JG_DOCTOR": PG_DSN})
    assert result.exit_code == 0, result.stdout
    assert "db1: healthy" in result.stdout and "audit: healthy" in result.stdout
    assert git(repo.root, "ls-remote", "origin") == before  # a dry run: nothing pushed


def test_an_unpushable_origin_is_a_warning(repo: AccessRepo, tmp_path: Path) -> None:
    git(repo.root, "remote", "add", "origin", str(tmp_path / "gone.git"))
    result = jitgrant("doctor", "--repo", str(repo.root), env={"JG_DOCTOR": PG_DSN})
    assert result.exit_code == 2
    lines = [x for x in result.stdout.splitlines() if x.startswith("audit: warning: ")]
    assert len(lines) == 1 and "git push --dry-run failed" in lines[0]


def test_no_origin_is_a_note(repo: AccessRepo) -> None:
    result = jitgrant("doctor", "--repo", str(repo.root), env={"JG_DOCTOR": PG_DSN})
    assert result.exit_code == 0
    assert "audit: note: audit branch: not checked: no origin" in result.stdout


def test_a_missing_group_role_says_how_to_make_it(repo: AccessRepo) -> None:
    repo.write("policies/main.yaml", policy(dsn_env="JG_DOCTOR", groups=("jg_doctor_none",)))
    repo.commit("policy")
    result = jitgrant("doctor", "--repo", str(repo.root), env={"JG_DOCTOR": PG_DSN})
    assert result.exit_code == 2
    assert ("db1: warning: group role jg_doctor_none: does not exist: grants of the access "
            'levels naming it fail; fix: CREATE ROLE "jg_doctor_none" NOLOGIN') \
        in result.stdout.splitlines()


def test_a_malformed_dsn_never_shows_its_password(repo: AccessRepo) -> None:
    secret = "doctor-Secret-77"
    result = jitgrant("doctor", "--repo", str(repo.root), "--format", "json",
                      env={"JG_DOCTOR": f" postgresql://root:{secret}@127.0.0.1:5432/x y"})
    assert result.exit_code == 1
    assert secret not in result.stdout + result.stderr
    assert '"check": "reachable"' in result.stdout


def test_an_unknown_target_is_one_error_line(repo: AccessRepo) -> None:
    result = jitgrant("doctor", "--repo", str(repo.root), "--target", "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("jitgrant: error: unknown target 'nope'")


@pytest.mark.parametrize(("severities", "code"), [
    ((), 0), (("ok", "note"), 0), (("ok", "warning"), 2), (("warning", "error", "note"), 1)])
def test_exit_code_is_the_worst_found(severities: tuple[str, ...], code: int) -> None:
    assert exit_code([Finding("t", "c", s, "m") for s in severities]) == code


def test_require_approval_without_a_token_is_a_warning(repo: AccessRepo) -> None:
    doc = policy(dsn_env="JG_DOCTOR", groups=("pg_monitor",))
    repo.write("policies/main.yaml", {**doc, "repository": {"require_approval": 1}})
    repo.commit("require approval")
    bare = jitgrant("doctor", "--repo", str(repo.root),
                    env={"JG_DOCTOR": PG_DSN, "GITHUB_REPOSITORY": "", "GITHUB_TOKEN": ""})
    assert bare.exit_code == 2, bare.stdout
    assert "approvals: warning: forge: repository.require_approval is 1 and " \
           "GITHUB_REPOSITORY is not set" in bare.stdout
    no_token = jitgrant("doctor", "--repo", str(repo.root),
                        env={"JG_DOCTOR": PG_DSN, "GITHUB_REPOSITORY": "acme/access",
                             "GITHUB_TOKEN": ""})
    assert "approvals: warning: forge: GITHUB_TOKEN is not set" in no_token.stdout
    ready = jitgrant("doctor", "--repo", str(repo.root),
                     env={"JG_DOCTOR": PG_DSN, "GITHUB_REPOSITORY": "acme/access",
                          "GITHUB_TOKEN": "ghs_x"})
    assert ready.exit_code == 0, ready.stdout
    assert "ghs_x" not in ready.stdout
