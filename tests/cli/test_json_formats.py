"""`--format json` for request, extend, password, revoke and codeowners: what a script needs
(the grant file, the branch and its commit; the CODEOWNERS rules), never a password or a
verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git, grant, policy, utc

GRANT_KEYS = {"action", "file", "grantee", "target", "access", "starts", "expires", "branch",
              "commit", "pushed", "title", "password_stored", "notes"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AccessRepo:
    """alice's repository (git config), her secret store in the test's own folder."""
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GIT_AUTHOR_EMAIL", raising=False)
    r = AccessRepo(tmp_path / "repo")
    data = policy(approvers=["@org/dba"])
    data["repository"] = {"policy_owners": ["@org/security"]}
    r.write("policies/main.yaml", data)
    r.write("grants/db1/alice-old.yaml", grant(expires=utc(hours=1)))
    r.commit("policy")
    git(r.root, "config", "user.email", "alice@example.com")
    return r


def run_json(repo: AccessRepo, *args: str) -> dict[str, Any]:
    result = jitgrant(*args, "--format", "json", "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # the notes are in the document
    out: dict[str, Any] = json.loads(result.stdout)
    assert "password_verifier" not in result.stdout and "SCRAM-SHA-256$" not in result.stdout
    return out


def assert_on_branch(repo: AccessRepo, made: dict[str, Any]) -> None:
    assert set(made) == GRANT_KEYS
    assert git(repo.root, "rev-parse", made["branch"]) == made["commit"]
    assert made["pushed"] is False


def test_request(repo: AccessRepo) -> None:
    made = run_json(repo, "request", "db1", "readonly", "--for", "2h", "--reason", "INC-1")
    assert_on_branch(repo, made)
    assert (made["action"], made["grantee"], made["target"], made["access"]) == (
        "request", "alice", "db1", "readonly")
    assert made["file"].startswith("grants/db1/alice-readonly-")
    assert made["starts"] is None and made["expires"].endswith("Z")
    added = git(repo.root, "diff", "--name-only", f"{made['branch']}^", made["branch"])
    assert added == made["file"]
    assert made["password_stored"] and Path(made["password_stored"]).is_file()


def test_request_for_someone_else_carries_the_notes(repo: AccessRepo) -> None:
    data = policy(approvers=["@org/dba"], requesters_for_others=["@alice-gh"])
    repo.write("policies/main.yaml", data)
    repo.commit("alice may ask for others")
    made = run_json(repo, "request", "db1", "readonly", "--for", "1h", "--reason", "x",
                    "--as", "bob")
    assert made["grantee"] == "bob" and made["password_stored"] is None
    assert any("carries no password" in note for note in made["notes"])


def test_extend(repo: AccessRepo) -> None:
    made = run_json(repo, "extend", "grants/db1/alice-old.yaml", "--for", "1h")
    assert_on_branch(repo, made)
    assert made["action"] == "extend" and made["file"].endswith("-extend.yaml")
    assert made["password_stored"] is None


def test_revoke(repo: AccessRepo) -> None:
    made = run_json(repo, "revoke", "grants/db1/alice-old.yaml")
    assert_on_branch(repo, made)
    assert (made["action"], made["file"], made["grantee"], made["access"]) == (
        "revoke", "grants/db1/alice-old.yaml", "alice", "readonly")
    removed = git(repo.root, "diff", "--name-only", "--diff-filter=D", f"{made['branch']}^",
                  made["branch"])
    assert removed == made["file"]


def test_a_refusal_is_still_one_line(repo: AccessRepo) -> None:
    result = jitgrant("request", "db1", "readonly", "--for", "9h", "--reason", "x",
                      "--format", "json", "--repo", str(repo.root))
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("jitgrant: error: ")


def test_codeowners(repo: AccessRepo) -> None:
    path = repo.root / ".github/CODEOWNERS"
    first = run_json(repo, "codeowners")
    assert (first["path"], first["stale"], first["written"]) == (".github/CODEOWNERS", True,
                                                                True)
    rules = {r["pattern"]: r["owners"] for r in first["rules"]}
    assert rules["*"] == ["@org/security"] and rules["/grants/db1/"] == ["@org/dba"]
    assert [r["pattern"] for r in first["rules"]][0] == "*"  # the file's order: last wins
    assert path.is_file()
    again = run_json(repo, "codeowners", "--check")
    assert (again["stale"], again["written"]) == (False, False)
    assert again["rules"] == first["rules"]

    path.write_text("# edited by hand\n")
    stale = jitgrant("codeowners", "--check", "--format", "json", "--repo", str(repo.root))
    assert stale.exit_code == 1
    assert json.loads(stale.stdout)["stale"] is True
    assert path.read_text() == "# edited by hand\n"  # --check writes nothing
