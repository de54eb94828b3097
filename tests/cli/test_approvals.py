"""Who approved: `jitgrant apply` asks the forge about the pull request each new grant arrived
with, records it in the audit, and with `repository.require_approval` refuses what lacks it.

The forge is a local stand-in (tests/forge_stub.py: an http.server on 127.0.0.1 answering
GitHub's documented REST endpoints with recorded-shape JSON, Link pagination, a 403 rate limit
and a 401); git is real (merge commits named as GitHub names them), and so is PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.cli.conftest import PG_DSN, Namespace, head, jitgrant
from tests.forge_stub import (TOKEN, Answer, FakeGitHub, bad_credentials, fake_github, pull,
                              rate_limited, review)
from tests.helpers import AccessRepo, git, grant

OWNERS = "* @acme/security\n/grants/db1/ @dave-gh @acme/dba\n"


def approval_policy(namespace: Namespace, required: int = 0) -> dict[str, Any]:
    doc = namespace.policy()
    doc["people"]["dave"] = {"email": "dave@example.com", "github": "dave-gh",
                             "groups": ["sre"]}
    if required:
        doc["repository"] = {"require_approval": required}
    return doc


def access_repo(root: Path, namespace: Namespace, required: int = 0) -> AccessRepo:
    repo = AccessRepo(root)
    repo.write("policies/main.yaml", approval_policy(namespace, required))
    repo.write(".github/CODEOWNERS", OWNERS)
    repo.commit("policy")
    return repo


def merge_pr(repo: AccessRepo, number: int, files: dict[str, dict[str, Any]]) -> str:
    """A branch with `files`, merged as GitHub's merge button does; the merge commit's sha."""
    branch = f"pr-{number}"
    return merge_branch(repo, branch, files, f"grant in #{number}",
                        f"Merge pull request #{number} from someone/{branch}")


def merge_branch(repo: AccessRepo, branch: str, files: dict[str, dict[str, Any]],
                 subject: str, message: str) -> str:
    """`files` committed on a new branch, merged into main with `message`; the merge's sha."""
    git(repo.root, "checkout", "-q", "-b", branch)
    for rel, doc in files.items():
        repo.write(rel, doc)
    repo.commit(subject)
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", branch, "-m", message)
    return head(repo)


def drop_role(name: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def latest_record(repo: AccessRepo) -> dict[str, Any]:
    """The record the last apply committed (two runs in one second sort by their ids)."""
    [rel] = git(repo.root, "show", "--name-only", "--format=", "HEAD").splitlines()
    return json.loads((repo.root / rel).read_text())


def grants_of(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["file"]: g for a in record["actions"] for g in a["grants"]}


def apply(repo: AccessRepo, namespace: Namespace, forge: FakeGitHub | None,
          token: str | None = TOKEN) -> Any:
    env = {**namespace.env, **(forge.env(token) if forge else {})}
    if forge is None:
        env |= {"GITHUB_REPOSITORY": "", "GITHUB_TOKEN": ""}
    return jitgrant("apply", "--repo", str(repo.root), env=env)


def test_apply_records_the_approver_code_owners_merger_and_url(tmp_path: Path,
                                                              namespace: Namespace) -> None:
    repo = access_repo(tmp_path / "repo", namespace)
    merge = merge_pr(repo, 12, {"grants/db1/alice.yaml": grant()})
    with fake_github() as forge:
        forge.pr(12, pull(12, "alice-gh", merge, web="https://github.com"), [
            review("erin-gh", "COMMENTED", review_id=1),
            review("dave-gh", "APPROVED", review_id=2),
            review("frank-gh", "APPROVED", review_id=3),
            review("gina-gh", "APPROVED", review_id=4)], page_size=1)
        forge.member("acme", "dba", "frank-gh")
        result = apply(repo, namespace, forge)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert namespace.role(namespace.login()) is not None
        entry = grants_of(latest_record(repo))["grants/db1/alice.yaml"]
        approval = entry["approval"]
        assert approval["url"] == "https://github.com/acme/access/pull/12"
        assert (approval["provider"], approval["lookup"], approval["note"]) == \
            ("github", "ok", None)
        assert (approval["author"], approval["merged_by"], approval["merged_at"]) == \
            ("alice-gh", "carol-gh", "2026-12-06T10:00:00Z")
        assert [(r["login"], r["state"], r["code_owner"]) for r in approval["reviews"]] == [
            ("dave-gh", "APPROVED", True),  # named in CODEOWNERS
            ("frank-gh", "APPROVED", True),  # through @acme/dba
            ("gina-gh", "APPROVED", False)]  # neither (the team answers 404 for her)
        assert approval["approvals"] == 3
        assert entry["pull_request"] == 12 and entry["merge_commit"] == merge
        # one request for the pull request, one per page of reviews, one per team question
        paths = forge.paths()
        assert paths.count("/repos/acme/access/pulls/12") == 1
        assert sum("/reviews" in p for p in paths) == 4  # 4 reviews, 1 per page
        assert sorted(p for p in paths if p.startswith("/orgs/")) == [
            "/orgs/acme/teams/dba/memberships/frank-gh",
            "/orgs/acme/teams/dba/memberships/gina-gh"]
        sent = forge.requests[0][1]
        assert sent["authorization"] == f"Bearer {TOKEN}"
        assert sent["accept"] == "application/vnd.github+json"
        assert sent["x-github-api-version"] == "2022-11-28"
        # The merged pull request is cached: when the login must be made again (dropped by
        # hand), the next run does not ask for the pull request again.
        drop_role(namespace.login())
        before = len(forge.requests)
        again = apply(repo, namespace, forge)
        assert again.exit_code == 0, again.stdout + again.stderr
        assert not any("/pulls/" in p for p, _ in forge.requests[before:])
        assert grants_of(latest_record(repo))["grants/db1/alice.yaml"]["approval"][
            "approvals"] == 3
    # The audit query reads it back (the records match the schema: none is skipped).
    query = jitgrant("audit", "--repo", str(repo.root), "--format", "json")
    assert query.exit_code == 0 and "skipped" not in query.stderr, query.stderr
    [period] = json.loads(query.stdout)
    assert period["approved_by"] == ["dave-gh", "frank-gh", "gina-gh"]
    assert period["pull_request_url"] == "https://github.com/acme/access/pull/12"
    csv = jitgrant("audit", "--repo", str(repo.root), "--format", "csv").stdout.splitlines()
    header = csv[0].split(",")
    row = dict(zip(header, csv[1].split(","), strict=True))
    assert row["approved_by"] == "dave-gh; frank-gh; gina-gh"
    table = jitgrant("audit", "--repo", str(repo.root)).stdout
    assert "dave-gh; frank-gh; gina-gh" in table
    for text in (result.stdout, result.stderr, again.stdout, again.stderr,
                 *(p.read_text() for p in (repo.root / "audit").rglob("*.json")),
                 (repo.root / ".git" / "jitgrant" / "approvals.json").read_text()):
        assert TOKEN not in text


def test_require_approval_refuses_a_pull_request_approved_by_its_author_or_grantee(
        tmp_path: Path, namespace: Namespace) -> None:
    repo = access_repo(tmp_path / "repo", namespace, required=1)
    m12 = merge_pr(repo, 12, {"grants/db1/alice.yaml": grant()})
    m13 = merge_pr(repo, 13, {"grants/db1/bob.yaml": grant("bob")})
    m14 = merge_pr(repo, 14, {"grants/db1/alice-rw.yaml": grant("alice", access="readwrite")})
    with fake_github() as forge:
        forge.pr(12, pull(12, "alice-gh", m12), [review("dave-gh", "APPROVED")])
        forge.pr(13, pull(13, "bob-gh", m13), [review("bob-gh", "APPROVED")])  # the author
        forge.pr(14, pull(14, "dave-gh", m14), [review("alice-gh", "APPROVED")])  # grantee
        result = apply(repo, namespace, forge)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert namespace.role(namespace.login()) is not None  # approved by another: created
    assert namespace.role(namespace.login("bob")) is None
    assert namespace.role(namespace.login("alice", "readwrite")) is None
    errors = result.stderr.splitlines()
    assert any(line.startswith("grants/db1/bob.yaml:1: repository.require_approval: 1: not "
                               "granted:") and "pull/13 has 0 approving" in line
               for line in errors), result.stderr
    assert any(line.startswith("grants/db1/alice-rw.yaml:1: repository.require_approval")
               for line in errors), result.stderr
    record = latest_record(repo)
    assert [(a["login"], a["action"]) for a in record["actions"]] == \
        [(namespace.login(), "create")]


TOO_MANY = Answer(429, {"message": "too many requests"}, {"Retry-After": "30"})


@pytest.mark.parametrize("answer, note", [(rate_limited(), "rate limited (retry after 60 s)"),
                                          (TOO_MANY, "rate limited (retry after 30 s)"),
                                          (bad_credentials(), "the token was refused")])
def test_a_forge_that_refuses_is_a_warning_not_a_failure(
        tmp_path: Path, namespace: Namespace, answer: Answer, note: str) -> None:
    repo = access_repo(tmp_path / "repo", namespace)
    merge_pr(repo, 12, {"grants/db1/alice.yaml": grant()})
    with fake_github() as forge:
        forge.routes["/repos/acme/access/pulls/12"] = answer
        result = apply(repo, namespace, forge)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert namespace.role(namespace.login()) is not None
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning.startswith("jitgrant: warning: approvals of pull request(s) #12 not known: ")
    assert note in warning
    approval = grants_of(latest_record(repo))["grants/db1/alice.yaml"]["approval"]
    assert approval["lookup"] == "unavailable" and note in approval["note"]
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr + result.stdout


def test_no_token_is_a_warning_and_with_require_approval_a_refusal(
        tmp_path: Path, namespace: Namespace) -> None:
    repo = access_repo(tmp_path / "repo", namespace)
    merge_pr(repo, 12, {"grants/db1/alice.yaml": grant()})
    with fake_github() as forge:
        result = apply(repo, namespace, forge, token=None)
        assert forge.requests == []  # nothing sent without a token
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "jitgrant: warning: approvals of pull request(s) #12 not known: no token" \
        in result.stderr
    approval = grants_of(latest_record(repo))["grants/db1/alice.yaml"]["approval"]
    assert approval["lookup"] == "unavailable"

    strict = access_repo(tmp_path / "strict", namespace, required=1)
    merge_pr(strict, 12, {"grants/db1/bob.yaml": grant("bob")})
    with fake_github() as forge:
        refused = apply(strict, namespace, forge, token=None)
    assert refused.exit_code == 1
    assert namespace.role(namespace.login("bob")) is None
    assert "grants/db1/bob.yaml:1: repository.require_approval: 1: not granted: pull " \
           "request #12: no token" in refused.stderr


def test_without_a_forge_nothing_is_asked_and_nothing_recorded(tmp_path: Path,
                                                              namespace: Namespace) -> None:
    repo = access_repo(tmp_path / "repo", namespace)
    merge_pr(repo, 12, {"grants/db1/alice.yaml": grant()})
    result = apply(repo, namespace, None)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    assert "approval" not in grants_of(latest_record(repo))["grants/db1/alice.yaml"]


def test_plan_says_which_grants_would_be_refused(tmp_path: Path, namespace: Namespace) -> None:
    """Online, `plan` asks the forge as apply would and reports the refusals (exit 1), never
    showing their logins as created. Offline (a pull request's check: nothing is merged yet)
    it asks nothing and warns that apply will."""
    repo = access_repo(tmp_path / "repo", namespace, required=1)
    m13 = merge_pr(repo, 13, {"grants/db1/bob.yaml": grant("bob")})
    with fake_github() as forge:
        forge.pr(13, pull(13, "bob-gh", m13), [review("bob-gh", "APPROVED")])
        online = jitgrant("plan", "--repo", str(repo.root),
                          env={**namespace.env, **forge.env()})
        asked = len(forge.requests)
        offline = jitgrant("plan", "--offline", "--repo", str(repo.root),
                           env={**namespace.env, **forge.env()})
        assert len(forge.requests) == asked  # offline asks nothing
    assert online.exit_code == 1, online.stdout + online.stderr
    assert "grants/db1/bob.yaml:1: repository.require_approval: 1: not granted" \
        in online.stderr
    assert namespace.login("bob") not in online.stdout
    assert offline.exit_code == 2, offline.stdout + offline.stderr
    assert "grants/db1/bob.yaml:1: warning: repository.require_approval: 1: apply grants " \
           "this only if" in offline.stderr


def test_an_unreachable_forge_and_an_unknown_pull_request(tmp_path: Path,
                                                          namespace: Namespace) -> None:
    """A forge nobody listens on: a warning (an event with --log-format json), and the grant
    is created without require_approval. A pull request the forge does not know: not_found."""
    repo = access_repo(tmp_path / "repo", namespace)
    merge_pr(repo, 12, {"grants/db1/alice.yaml": grant()})
    with fake_github() as forge:
        closed = forge.url
    result = jitgrant("apply", "--repo", str(repo.root), "--log-format", "json",
                      env={**namespace.env, **forge.env(), "GITHUB_API_URL": closed})
    assert result.exit_code == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [warning] = [e for e in events if e["event"] == "warning"]
    assert warning["message"].startswith("approvals of pull request(s) #12 not known: ")
    assert "could not be reached" in warning["message"]
    assert grants_of(latest_record(repo))["grants/db1/alice.yaml"]["approval"]["lookup"] == \
        "unavailable"

    merge_pr(repo, 13, {"grants/db1/bob.yaml": grant("bob")})
    with fake_github() as forge:  # knows no pull request: every path answers 404
        unknown = apply(repo, namespace, forge)
    assert unknown.exit_code == 0, unknown.stdout + unknown.stderr
    approval = grants_of(latest_record(repo))["grants/db1/bob.yaml"]["approval"]
    assert (approval["lookup"], approval["url"]) == \
        ("not_found", f"{forge.url}/acme/access/pull/13")
