"""The reviewer's summary is the difference a pull request makes to the logins: what `apply`
would do after the merge and not at the merge base, without a database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.credentials import mysql_native_verifier
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy, utc


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    """main: the policy and bob's readonly grant."""
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", policy())
    r.write("grants/db1/bob.yaml", grant("bob"))
    r.commit("policy and bob")
    git(r.root, "checkout", "-q", "-b", "pr")
    return r


def summary(repo: AccessRepo, fmt: str = "markdown") -> str:
    result = jitgrant("plan", "--repo", str(repo.root), "--offline", "--base", "main",
                      "--format", fmt)
    assert result.exit_code in (0, 1, 2), result.output  # 1: the change has errors
    return result.stdout


def review(repo: AccessRepo) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(summary(repo, "json"))
    assert list(data)[0] == "summary"  # the totals come first
    return data


def rows(markdown: str, login: str) -> list[str]:
    return [line for line in markdown.splitlines() if f"| {login} |" in line]


def test_an_offboarding_names_the_logins_it_revokes(repo: AccessRepo) -> None:
    pol = policy()
    pol["people"]["bob"]["active"] = False
    repo.write("policies/main.yaml", pol)
    repo.commit("bob leaves")
    out = summary(repo)
    assert "revokes 1 login" in out.splitlines()[0]
    [row] = rows(out, "jit\\_bob\\_readonly")
    assert row.startswith("| - revoke |") and "| offboarded |" in row
    assert "In sync" not in out and "No grant is added" not in out
    change = review(repo)["review"]["changes"][0]
    assert (change["action"], change["login"], change["cause"], change["grantee"]) == \
        ("revoke", "jit_bob_readonly", "offboarded", "bob")


def test_a_revocation_names_the_login_it_revokes_in_every_format(repo: AccessRepo) -> None:
    repo.remove("grants/db1/bob.yaml")
    repo.commit("end bob's access early")
    first = summary(repo).splitlines()[0]
    assert "this change revokes 1 login" in first
    text = summary(repo, "text")
    assert text.splitlines()[0].startswith("this change revokes 1 login")
    assert "- revoke jit_bob_readonly on db1 for bob (readonly) [removed]" in text
    assert review(repo)["review"]["totals"] == {"revoke": 1}


def test_a_branch_from_an_older_main_lists_only_its_own_changes(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice"))
    repo.commit("alice asks")
    git(repo.root, "checkout", "-q", "main")
    pol = policy()
    pol["people"]["dave"] = {"email": "d@example.com", "groups": ["sre"]}
    repo.write("policies/main.yaml", pol)
    repo.write("grants/db1/dave.yaml", grant("dave"))
    repo.remove("grants/db1/bob.yaml")
    repo.commit("main moves on: dave in, bob out")
    git(repo.root, "checkout", "-q", "pr")
    data = review(repo)
    assert data["summary"] == "creates 1 login"
    assert [(c["action"], c["login"]) for c in data["review"]["changes"]] == \
        [("create", "jit_alice_readonly")]
    text = summary(repo, "text")
    assert "bob" not in text and "dave" not in text  # main's changes are not the PR's
    assert "+ create" not in summary(repo).split("#### Requested")[1].split("####")[0]


def test_a_policy_change_that_revokes_many_says_so_first(repo: AccessRepo) -> None:
    git(repo.root, "checkout", "-q", "main")
    pol = policy()
    for n in range(40):
        pol["people"][f"p{n}"] = {"email": f"p{n}@example.com", "groups": ["sre"]}
        repo.write(f"grants/db1/p{n}.yaml", grant(f"p{n}"))
    repo.write("policies/main.yaml", pol)
    repo.commit("forty people")
    git(repo.root, "checkout", "-q", "-B", "pr")
    pol["access"]["readonly"]["allowed_groups"] = ["dba"]
    repo.write("policies/main.yaml", pol)
    repo.commit("readonly is for DBAs now")
    out = summary(repo)
    assert "revokes 41 logins" in out.splitlines()[0]
    assert len([line for line in out.splitlines() if line.startswith("| - revoke |")]) == 41
    assert summary(repo, "text").startswith("this change revokes 41 logins")


def test_extensions_shortenings_and_access_changes(repo: AccessRepo) -> None:
    git(repo.root, "checkout", "-q", "main")
    repo.write("grants/db1/alice.yaml", grant("alice", expires=utc(hours=2)))
    repo.commit("alice")
    git(repo.root, "checkout", "-q", "-B", "pr")
    repo.write("grants/db1/alice.yaml", grant("alice", expires=utc(hours=5)))
    repo.write("grants/db1/bob.yaml", grant("bob", expires=utc(hours=1)))
    repo.commit("alice longer, bob shorter")
    changes = {c["login"]: c for c in review(repo)["review"]["changes"]}
    assert changes["jit_alice_readonly"]["cause"] == "extended"
    assert changes["jit_bob_readonly"]["cause"] == "shortened"
    assert changes["jit_bob_readonly"]["expires_before"] is not None
    repo.write("grants/db1/alice.yaml", grant("alice", access="readwrite"))
    repo.commit("alice needs to write")
    changes = {c["login"]: c for c in review(repo)["review"]["changes"]}
    assert changes["jit_alice_readonly"]["action"] == "revoke"
    assert changes["jit_alice_readonly"]["cause"] == "access level changed to readwrite"
    assert changes["jit_alice_readwrite"]["action"] == "create"


def test_a_change_that_touches_no_login_says_so(repo: AccessRepo) -> None:
    repo.write("README.md", "hello\n")
    repo.commit("docs")
    out = summary(repo)
    assert "this change changes no login" in out.splitlines()[0]
    assert "No login is created, changed or revoked." in out


def test_the_offline_plan_of_a_mysql_target_shows_the_backstop_event(tmp_path: Path) -> None:
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", policy(engine="mysql", expiry_backstop="event"))
    verifier = mysql_native_verifier("not-a-real-password")
    r.write("grants/db1/alice.yaml", grant("alice", verifier=verifier))
    r.commit("mysql with a backstop")
    result = jitgrant("plan", "--repo", str(r.root), "--offline")
    assert result.exit_code == 2
    assert "CREATE EVENT `dsn_database`.`" in result.stdout
    assert "DO ALTER USER 'jit_alice_readonly'@'%' ACCOUNT LOCK" in result.stdout


def test_the_checks_judge_only_the_branchs_own_changes(repo: AccessRepo) -> None:
    """main changed the policies after the branch was made: that is not the PR's change."""
    repo.write("grants/db1/alice.yaml", grant("alice"))
    repo.commit("alice asks")
    git(repo.root, "checkout", "-q", "main")
    pol = policy()
    pol["access"]["readonly"]["auto_approve"] = True
    repo.write("policies/main.yaml", pol)
    repo.commit("readonly is auto-approved now")
    git(repo.root, "checkout", "-q", "pr")
    result = jitgrant("validate", "--repo", str(repo.root), "--base", "main",
                      "--auto-approvable")
    assert "policies/main.yaml: not a grant file" not in result.stderr


def test_a_removed_target_is_said_to_be_left_alone_not_revoked(repo: AccessRepo) -> None:
    pol = policy()
    pol["targets"]["db2"] = pol["targets"].pop("db1")
    repo.write("policies/main.yaml", pol)
    repo.commit("db1 is renamed db2")
    data = review(repo)
    assert any("target db1 is removed: apply stops managing it" in n
               for n in data["review"]["notes"])
    assert "target db2 is added" in data["review"]["notes"]
    assert not [c for c in data["review"]["changes"] if c["target"] == "db1"]
