"""Attack (issue 11, finding 11): a requester for others holding the grantee's password.

`lead` may ask for others (requesters_for_others). If lead's pull request could carry a
verifier for alice's login, lead would hold the password of a login the audit attributes to
alice, or swap it onto alice's live login with a grant that expires later. The pull request's
checks refuse any verifier for someone other than its author that the base did not already
hold for that login; asking for someone else without one stays allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy, utc

ALICE_VERIFIER = scram_sha256_verifier(new_password())
LEAD_VERIFIER = scram_sha256_verifier(new_password())
REFUSED = "password_verifier: only alice may set the password of their login"


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    """alice's own grant on main; lead (lead-gh) may ask for others; the PR's branch."""
    r = AccessRepo(tmp_path / "repo")
    pol = policy(requesters_for_others=["@lead-gh"])
    pol["people"]["lead"] = {"email": "lead@example.com", "github": "lead-gh", "groups": ["sre"]}
    r.write("policies/main.yaml", pol)
    r.write("grants/db1/alice.yaml", grant("alice", verifier=ALICE_VERIFIER,
                                           expires=utc(hours=1)))
    r.commit("policy and alice's grant")
    git(r.root, "checkout", "-q", "-b", "pr")
    return r


def check(repo: AccessRepo, author: str = "lead-gh") -> Result:
    return jitgrant("validate", "--repo", str(repo.root), "--base", "main", "--pr-author",
                    author)


def test_leads_verifier_on_a_grant_for_alice_is_refused(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice-new.yaml", grant("alice", verifier=LEAD_VERIFIER))
    repo.commit("lead asks for alice, with lead's password")
    result = check(repo)
    assert result.exit_code == 1
    assert f"grants/db1/alice-new.yaml:1: {REFUSED}" in result.stderr
    assert LEAD_VERIFIER not in result.stdout + result.stderr
    assert check(repo, "alice-gh").exit_code == 0  # the same file from alice is fine


def test_a_later_grant_swapping_leads_password_onto_alices_login_is_refused(
        repo: AccessRepo) -> None:
    """The login takes the verifier of the grant expiring last: the swap."""
    repo.write("grants/db1/alice-later.yaml", grant("alice", verifier=LEAD_VERIFIER,
                                                    expires=utc(hours=7)))
    repo.commit("lead extends alice, with lead's password")
    assert REFUSED in check(repo).stderr


def test_changing_the_verifier_of_alices_grant_is_refused(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant("alice", verifier=LEAD_VERIFIER,
                                              expires=utc(hours=1)))
    repo.commit("lead edits alice's grant")
    assert f"grants/db1/alice.yaml:1: {REFUSED}" in check(repo).stderr


def test_alices_verifier_copied_from_another_login_is_refused(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice-rw.yaml", grant("alice", "db1", "readwrite",
                                                 verifier=ALICE_VERIFIER))
    repo.commit("lead asks for alice's readwrite with her readonly verifier")
    assert REFUSED in check(repo).stderr


def test_asking_for_alice_without_a_verifier_passes(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice-new.yaml", grant("alice", expires=utc(hours=2)))
    repo.commit("lead asks for alice")
    result = check(repo)
    assert result.exit_code == 0, result.stderr


def test_extending_alices_grant_keeps_her_own_verifier(repo: AccessRepo) -> None:
    """`jitgrant extend` run by lead copies the verifier alice made: lead learns nothing."""
    repo.write("grants/db1/alice-extend.yaml", grant("alice", verifier=ALICE_VERIFIER,
                                                     expires=utc(hours=3)))
    repo.write("grants/db1/alice.yaml", grant("alice", verifier=ALICE_VERIFIER,
                                              expires=utc(hours=1), reason="INC-2 reworded"))
    repo.commit("lead extends alice's grant and rewords it")
    result = check(repo)
    assert result.exit_code == 0, result.stderr
