"""Who approved, from GitLab: `jitgrant apply` in a GitLab CI job (CI_API_V4_URL,
CI_PROJECT_PATH, CI_PROJECT_URL, and GITLAB_TOKEN) finds the merge request a grant arrived with
on its merge commit's "See merge request group/project!N" line, asks GitLab's API for it and
its approvals, records them, and with `repository.require_approval` refuses what lacks them.

The forge is a local stand-in (tests/forge_stub.py: an http.server on 127.0.0.1 answering
GitLab's documented GET /projects/:id/merge_requests/:iid and .../approvals with JSON shaped
like GitLab's documented answers); git is real (merge commits written as GitLab's default
merge commit template writes them), and so is PostgreSQL. Nothing here talks to gitlab.com."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.doctor import check_forge
from tests.cli.conftest import Namespace, jitgrant
from tests.cli.test_approvals import grants_of, latest_record, merge_branch
from tests.forge_stub import (GITLAB_WEB, TOKEN, FakeGitHub, fake_github, gitlab_approval,
                              merge_request)
from tests.helpers import AccessRepo, git, grant

FILE = "grants/db1/alice.yaml"


def gitlab_repo(root: Path, namespace: Namespace, required: int = 0) -> AccessRepo:
    doc = namespace.policy()
    doc["people"]["alice"]["gitlab"] = "alice-gl"
    doc["people"]["bob"]["gitlab"] = "bob.gl"
    doc["people"]["dave"] = {"email": "dave@example.com", "gitlab": "dave-gl", "groups": ["sre"]}
    if required:
        doc["repository"] = {"require_approval": required}
    repo = AccessRepo(root)
    repo.write("policies/main.yaml", doc)
    repo.write(".gitlab/CODEOWNERS", "* @acme/security\n/grants/db1/ @dave-gl\n")
    repo.commit("policy")
    return repo


def gitlab_merge(repo: AccessRepo, iid: int, files: dict[str, dict[str, Any]],
                 title: str = "Grant", branch: str | None = None) -> str:
    """A branch merged as GitLab's merge button does with its default template:
    "Merge branch 'x' into 'main'", the title, then "See merge request acme/access!N"."""
    branch = branch or f"mr-{iid}"
    return merge_branch(repo, branch, files, f"grant in !{iid}",
                        f"Merge branch '{branch}' into 'main'\n\n{title}\n\n"
                        f"See merge request acme/access!{iid}")


def apply(repo: AccessRepo, namespace: Namespace, forge: FakeGitHub,
          token: str | None = TOKEN) -> Any:
    return jitgrant("apply", "--repo", str(repo.root),
                    env={**namespace.env, **forge.gitlab_env(token)})


def test_apply_records_the_merge_requests_approver(tmp_path: Path,
                                                   namespace: Namespace) -> None:
    repo = gitlab_repo(tmp_path / "repo", namespace)
    merge = gitlab_merge(repo, 12, {FILE: grant()})
    with fake_github() as forge:
        forge.mr(12, merge_request(12, "alice-gl", merge), [gitlab_approval("dave-gl")])
        result = apply(repo, namespace, forge)
        assert result.exit_code == 0, result.stdout + result.stderr
        paths = forge.paths()
        sent = forge.requests[0][1]
    assert namespace.role(namespace.login()) is not None
    entry = grants_of(latest_record(repo))[FILE]
    assert (entry["pull_request"], entry["merge_commit"]) == (12, merge)
    approval = entry["approval"]
    assert (approval["provider"], approval["lookup"], approval["note"]) == ("gitlab", "ok", None)
    assert approval["url"] == f"{GITLAB_WEB}/-/merge_requests/12"
    assert (approval["author"], approval["merged_by"], approval["merged_at"]) == \
        ("alice-gl", "carol-gl", "2026-12-06T10:00:00Z")
    assert [(r["login"], r["state"], r["code_owner"], r["counted"], r["submitted_at"])
            for r in approval["reviews"]] == [
        ("dave-gl", "APPROVED", True, True, "2026-12-06T09:55:00Z")]
    assert approval["approvals"] == 1
    assert sorted(paths) == ["/api/v4/projects/acme%2Faccess/merge_requests/12",
                             "/api/v4/projects/acme%2Faccess/merge_requests/12/approvals"]
    assert sent["private-token"] == TOKEN and "authorization" not in sent
    story = jitgrant("audit", "--repo", str(repo.root), "--grant", FILE).stdout
    assert "  approved by  dave-gl (code owner, 2026-12-06 09:55Z)" in story.splitlines()
    for text in (result.stdout, result.stderr,
                 *(p.read_text() for p in (repo.root / "audit").rglob("*.json")),
                 (repo.root / ".git" / "jitgrant" / "approvals.json").read_text()):
        assert TOKEN not in text

    # The file removed in !20: the revocation names the merge request that removed it.
    git(repo.root, "checkout", "-q", "-b", "mr-20")
    repo.remove(FILE)
    repo.commit("alice is done")
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", "mr-20", "-m", "Merge branch 'mr-20' into 'main'"
        "\n\nDone\n\nSee merge request acme/access!20")
    with fake_github() as forge:
        assert apply(repo, namespace, forge).exit_code == 0
    [revoke] = latest_record(repo)["actions"]
    assert (revoke["action"], revoke["cause"]) == ("revoke", "removed")
    assert revoke["ended_by"]["pull_request"] == 20


def test_require_approval_counts_neither_author_nor_grantee_nor_a_late_approval(
        tmp_path: Path, namespace: Namespace) -> None:
    """!12: approved by dave-gl, granted. !13: bob's, approved by bob.gl (author and
    grantee). !14: dave-gl's for alice, approved by ALICE-GL (the grantee, in another case).
    !15: approved by erin-gl an hour after the merge (a GitLab that dates approvals)."""
    repo = gitlab_repo(tmp_path / "repo", namespace, required=1)
    m12 = gitlab_merge(repo, 12, {FILE: grant()})
    m13 = gitlab_merge(repo, 13, {"grants/db1/bob.yaml": grant("bob")})
    m14 = gitlab_merge(repo, 14, {"grants/db1/alice-rw.yaml": grant("alice", access="readwrite")})
    m15 = gitlab_merge(repo, 15, {"grants/db1/bob-late.yaml": grant("bob",
                                                                    reason="INC-2 again")})
    with fake_github() as forge:
        forge.mr(12, merge_request(12, "alice-gl", m12), [gitlab_approval("dave-gl", None)])
        forge.mr(13, merge_request(13, "bob.gl", m13), [gitlab_approval("bob.gl")])
        forge.mr(14, merge_request(14, "dave-gl", m14), [gitlab_approval("ALICE-GL")])
        forge.mr(15, merge_request(15, "dave-gl", m15),
                 [gitlab_approval("erin-gl", "2026-12-06T11:00:00.000Z")])
        result = apply(repo, namespace, forge)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert namespace.role(namespace.login()) is not None
    assert namespace.role(namespace.login("bob")) is None
    assert namespace.role(namespace.login("alice", "readwrite")) is None
    refused = {line.split(":", 1)[0] for line in result.stderr.splitlines()
               if ": repository.require_approval: 1: not granted: " in line}
    assert refused == {"grants/db1/bob.yaml", "grants/db1/alice-rw.yaml",
                       "grants/db1/bob-late.yaml"}
    assert f"{GITLAB_WEB}/-/merge_requests/13 has 0 approving" in result.stderr


def test_no_token_and_a_grantee_without_a_gitlab_login(tmp_path: Path,
                                                       namespace: Namespace) -> None:
    repo = gitlab_repo(tmp_path / "repo", namespace, required=1)
    gitlab_merge(repo, 12, {FILE: grant()})
    with fake_github() as forge:
        result = apply(repo, namespace, forge, token=None)
        assert forge.requests == []
    assert result.exit_code == 1
    assert f"{FILE}:1: repository.require_approval: 1: not granted: merge request !12: no " \
           "token (GITLAB_TOKEN is not set)" in result.stderr
    assert "approvals of merge request(s) !12 not known: no token" in result.stderr

    other = gitlab_repo(tmp_path / "other", namespace, required=1)
    doc = namespace.policy()
    doc["repository"] = {"require_approval": 1}  # nobody has a gitlab: login here
    other.write("policies/main.yaml", doc)
    other.commit("policy without gitlab logins")
    m20 = gitlab_merge(other, 20, {FILE: grant()})
    with fake_github() as forge:
        forge.mr(20, merge_request(20, "dave-gl", m20), [gitlab_approval("erin-gl")])
        refused = apply(other, namespace, forge)
    assert refused.exit_code == 1
    assert "the grantee alice has no people.alice.gitlab" in refused.stderr


def test_doctor_names_gitlabs_token() -> None:
    env = {"CI_API_V4_URL": "https://gitlab.example.com/api/v4", "CI_PROJECT_PATH": "acme/access"}
    [finding] = check_forge(1, env)
    assert finding.severity == "warning" and "GITLAB_TOKEN is not set" in finding.message
    [ok] = check_forge(1, {**env, "GITLAB_TOKEN": "glpat-x"})
    assert ok.severity == "ok" and "acme/access" in ok.message
