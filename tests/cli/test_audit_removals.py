"""A grant removed by a pull request, and a person offboarded by one, stay in the audit under
their grantee, with the pull request that ended them: real PostgreSQL, real git history."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.credentials import mysql_native_verifier
from tests.cli.conftest import Namespace, jitgrant
from tests.helpers import AccessRepo, git, grant, policy


def merge_pr(repo: AccessRepo, number: int, branch: str, change: Any) -> None:
    """Make `change` on a branch and merge it as GitHub's merge button does."""
    git(repo.root, "checkout", "-q", "-b", branch, "main")
    change()
    repo.commit(f"{branch}: the change")
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", "-m",
        f"Merge pull request #{number} from acme/{branch}", branch)


def apply(repo: AccessRepo, namespace: Namespace) -> None:
    result = jitgrant("apply", "--repo", str(repo.root), env=namespace.env)
    assert result.exit_code == 0, result.output


def audit(repo: AccessRepo, *args: str) -> list[dict[str, Any]]:
    result = jitgrant("audit", "--repo", str(repo.root), "--format", "json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.fixture
def ended(pg_repo: AccessRepo, namespace: Namespace) -> AccessRepo:
    """alice and bob granted by #5 and #6 and applied; then #7 deletes bob's grant file and
    #8 offboards alice, and apply revokes both."""
    repo = pg_repo
    merge_pr(repo, 5, "bob", lambda: repo.write("grants/db1/bob.yaml", grant("bob")))
    merge_pr(repo, 6, "alice", lambda: repo.write("grants/db1/alice.yaml", grant("alice")))
    apply(repo, namespace)
    merge_pr(repo, 7, "bob-done", lambda: repo.remove("grants/db1/bob.yaml"))
    offboarded = namespace.policy()
    offboarded["people"]["alice"]["active"] = False
    merge_pr(repo, 8, "alice-leaves", lambda: repo.write("policies/main.yaml", offboarded))
    time.sleep(1.1)  # the trail orders runs by their start, to the second
    apply(repo, namespace)
    assert namespace.role(namespace.login("bob")) is None
    assert namespace.role(namespace.login("alice")) is None
    return repo


def test_a_removed_grant_keeps_its_grantee_and_names_its_pull_request(
        ended: AccessRepo, namespace: Namespace) -> None:
    actions = audit(ended, "--grantee", "bob", "--view", "actions")
    assert [(a["action"], a["cause"]) for a in actions] == [("create", "granted"),
                                                             ("revoke", "removed")]
    revoke = actions[1]
    assert (revoke["grantee"], revoke["access"]) == ("bob", "readonly")
    assert revoke["ended_by"]["pull_request"] == 7
    assert revoke["ended_by"]["file"] == "grants/db1/bob.yaml"
    [period] = audit(ended, "--grantee", "bob")
    assert period["ended_cause"] == "removed" and period["ended_pull_request"] == 7
    assert [a["pull_request"] for a in period["approvals"]] == [5]


def test_an_offboarding_keeps_its_grantee_and_names_its_pull_request(
        ended: AccessRepo, namespace: Namespace) -> None:
    [period] = audit(ended, "--grantee", "alice")
    assert period["ended_cause"] == "offboarded" and period["ended_pull_request"] == 8
    assert period["ended_by"]["file"] == "policies/"
    table = jitgrant("audit", "--repo", str(ended.root), "--grantee", "alice").stdout
    assert "offboarded  #8" in table


def test_older_records_without_the_field_still_load(ended: AccessRepo) -> None:
    for path in (ended.root / "audit").rglob("*.json"):
        data = json.loads(path.read_text())
        for action in data["actions"]:
            action.pop("ended_by", None)
        path.write_text(json.dumps(data))
    result = jitgrant("audit", "--repo", str(ended.root), "--format", "json")
    assert result.exit_code == 0 and "skipped" not in result.stderr
    assert len(json.loads(result.stdout)) == 2


def test_the_marker_names_the_owner_of_a_postgres_login() -> None:
    from reconciler.model import ActualRole
    from reconciler.plan import marked_owner
    role = ActualRole("jit_bob_readonly", comment="jitgrant: db1: bob (readonly) state 0a1b")
    assert marked_owner(role) == ("bob", "readonly")
    assert marked_owner(ActualRole("x", comment="hand made")) is None


def test_a_mysql_removal_finds_its_grantee_in_history(tmp_path: Path) -> None:
    """MySQL accounts carry no marker: the deleted file itself says whose the login was."""
    from reconciler.endings import endings
    from reconciler.gitrepo import open_repo
    from reconciler.plan import Action
    from reconciler.snapshot import read_snapshot
    from tests.helpers import utc

    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", policy(engine="mysql"))
    repo.commit("policy")
    verifier = mysql_native_verifier("not-a-real-password")
    merge_pr(repo, 3, "bob", lambda: repo.write("grants/db1/bob.yaml",
                                                grant("bob", verifier=verifier)))
    merge_pr(repo, 4, "bob-done", lambda: repo.remove("grants/db1/bob.yaml"))
    snap = read_snapshot(repo.root, "HEAD", utc())
    target = snap.policy.targets["db1"]
    revoke = Action(target="db1", kind="revoke", login="jit_bob_readonly", cause="removed")
    found = endings(open_repo(repo.root), snap.commit, snap.policy, target, [revoke])
    ending = found["jit_bob_readonly"]
    assert (ending.grantee, ending.access, ending.provenance.pull_request) == \
        ("bob", "readonly", 4)

