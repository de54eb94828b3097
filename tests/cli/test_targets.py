"""`jitgrant targets` (what may I ask for, where?) and `--target`: repeatable, names or shell
globs, and one that matches nothing is an error line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import UserError
from reconciler.targets import select
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy


def three_targets() -> dict[str, Any]:
    """db1 (production), orders-prod (production) and orders-staging (a mysql target)."""
    data = policy()
    db1 = data["targets"]["db1"]
    data["targets"]["orders-prod"] = {**db1, "role_prefix": "jo_"}
    data["targets"]["orders-staging"] = {**db1, "engine": "mysql", "dsn_env": "JG_MY",
                                         "environment": "staging", "role_prefix": "js_"}
    data["access"]["readonly"]["description"] = "SELECT on the app's tables"
    return data


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AccessRepo:
    """Three targets; the git identity (from git config) is alice's."""
    monkeypatch.delenv("GIT_AUTHOR_EMAIL", raising=False)
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", three_targets())
    r.write("grants/db1/alice.yaml", grant())
    r.write("grants/orders-prod/alice.yaml", grant(target="orders-prod"))
    r.commit("policy")
    git(r.root, "config", "user.email", "alice@example.com")
    return r


def targets(repo: AccessRepo, *args: str) -> Any:
    return jitgrant("targets", "--repo", str(repo.root), *args)


def test_targets_lists_each_target_with_what_i_may_request(repo: AccessRepo) -> None:
    result = targets(repo)
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["TARGET", "ENGINE", "ENVIRONMENT"] and "alice" in header
    assert [r.split()[:3] for r in rows] == [["db1", "postgres", "production"],
                                             ["orders-prod", "postgres", "production"],
                                             ["orders-staging", "mysql", "staging"]]
    # alice is in sre (readwrite is only for sre); staging-only is for staging alone.
    assert rows[0].endswith("readonly (8h), readwrite (2h)")
    assert rows[2].endswith("readonly (8h), readwrite (2h), staging-only (8h)")


def test_as_someone_else_lists_their_levels(repo: AccessRepo) -> None:
    rows = targets(repo, "--as", "bob").stdout.splitlines()[1:]
    assert rows[0].endswith("readonly (8h)") and "readwrite" not in rows[0]


def test_an_inactive_person_may_request_nothing(repo: AccessRepo) -> None:
    result = targets(repo, "--as", "carol")
    assert result.exit_code == 0
    assert all(r.endswith("none") for r in result.stdout.splitlines()[1:])
    assert "carol is not active" in result.stderr


def test_json_is_a_list_usable_as_a_ci_matrix(repo: AccessRepo) -> None:
    result = targets(repo, "--as", "bob", "--format", "json")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    assert [(t["name"], t["engine"], t["environment"]) for t in found] == [
        ("db1", "postgres", "production"), ("orders-prod", "postgres", "production"),
        ("orders-staging", "mysql", "staging")]
    [level] = found[0]["access_levels"]
    assert level == {"name": "readonly", "max_duration": "8h", "max_duration_seconds": 28800,
                     "auto_approve": False, "dangerous": False,
                     "description": "SELECT on the app's tables"}
    assert [a["name"] for a in found[2]["access_levels"]] == ["readonly", "staging-only"]


@pytest.mark.parametrize(("args", "email", "fragment"), [
    (["--as", "nobody"], "alice@example.com", "--as 'nobody': no such person"),
    ([], "stranger@example.com", "who are you?"),
])
def test_who_cannot_be_told_is_one_line(repo: AccessRepo, args: list[str], email: str,
                                        fragment: str) -> None:
    git(repo.root, "config", "user.email", email)
    result = targets(repo, *args)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("jitgrant: error: ") and fragment in line
    assert result.stdout == ""


def test_invalid_policies_at_head_are_one_line(repo: AccessRepo) -> None:
    repo.write("policies/main.yaml", "targets: [\n")
    repo.commit("broken")
    result = targets(repo)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "the policies at HEAD are invalid" in line


# -- --target: repeatable, names or globs ------------------------------------------------------


def test_select_names_and_globs() -> None:
    names = ["db1", "orders-prod", "orders-staging"]
    assert select(names, ()) == names
    assert select(names, ("orders-*",)) == ["orders-prod", "orders-staging"]
    assert select(names, ("orders-staging", "db1", "db?")) == ["db1", "orders-staging"]
    with pytest.raises(UserError) as exc:
        select(names, ("db1", "nope", "x*"))
    assert str(exc.value) == ("unknown target 'nope'; no target matches 'x*' "
                              "(targets: db1, orders-prod, orders-staging)")


def plan_targets(repo: AccessRepo, *args: str) -> list[str]:
    result = jitgrant("plan", "--offline", "--repo", str(repo.root), "--format", "json", *args)
    assert result.exit_code == 2, result.stderr
    return [t["target"] for t in json.loads(result.stdout)["targets"]]


def test_plan_takes_several_targets_and_globs(repo: AccessRepo) -> None:
    assert plan_targets(repo, "--target", "db1", "--target", "orders-prod") == [
        "db1", "orders-prod"]  # both, not the last one given
    assert plan_targets(repo, "--target", "orders-*") == ["orders-prod", "orders-staging"]
    assert plan_targets(repo) == ["db1", "orders-prod", "orders-staging"]


@pytest.mark.parametrize("command", [["plan", "--offline"], ["apply", "--dry-run"],
                                     ["standing"]])
def test_a_target_that_matches_nothing_is_an_error_line(repo: AccessRepo,
                                                        command: list[str]) -> None:
    head = git(repo.root, "rev-parse", "HEAD")
    result = jitgrant(*command, "--repo", str(repo.root), "--target", "db1",
                      "--target", "orders-*", "--target", "db9")
    assert result.exit_code == 1
    assert result.stderr == ("jitgrant: error: unknown target 'db9' "
                             "(targets: db1, orders-prod, orders-staging)\n")
    assert git(repo.root, "rev-parse", "HEAD") == head  # nothing committed
