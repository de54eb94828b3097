"""What the planner would refuse from the policies alone is refused by `validate` and
`request` already, so no pull request is merged for a grant `plan` then skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.credentials import mysql_native_verifier
from tests.cli.conftest import jitgrant
from tests.cli.test_request import make_repo, request
from tests.helpers import AccessRepo, git, grant, policy


def two_role_mysql_policy() -> dict[str, object]:
    return policy(engine="mysql", groups=("app_read", "app_report"))


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", two_role_mysql_policy())
    r.commit("a mysql target whose levels name two roles")
    git(r.root, "checkout", "-q", "-b", "request")
    return r


def test_the_pull_request_check_refuses_a_multi_role_level_on_mysql(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml",
               grant("alice", verifier=mysql_native_verifier("not-a-real-password")))
    repo.commit("alice asks")
    result = jitgrant("validate", "--repo", str(repo.root), "--base", "main",
                      "--pr-author", "alice-gh")
    assert result.exit_code == 1
    assert "grants/db1/alice.yaml:3: access: 'readonly' names 2 roles" in result.stderr
    assert "one default role per account" in result.stderr


def test_the_policy_itself_is_flagged(repo: AccessRepo) -> None:
    result = jitgrant("validate", "--repo", str(repo.root))
    assert "access.readonly: 'readonly' names 2 roles" in result.stderr
    assert "its grants on target db1 are refused" in result.stderr


def test_request_refuses_a_multi_role_level_on_mysql(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(tmp_path / "config"))
    r = make_repo(tmp_path / "r", monkeypatch, engine="mysql")
    r.write("policies/main.yaml", two_role_mysql_policy())
    r.commit("two roles")
    result = request(r)
    assert result.exit_code == 1
    assert "'readonly' names 2 roles" in result.stderr
    assert not (tmp_path / "config").exists()


def test_a_postgres_prefix_in_the_servers_namespace_is_refused(tmp_path: Path) -> None:
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", policy(prefix="pg_"))
    r.commit("pg_ prefix")
    result = jitgrant("validate", "--repo", str(r.root))
    assert result.exit_code == 1
    assert "targets.db1.role_prefix: 'pg_': PostgreSQL reserves names" in result.stderr
