"""`jitgrant apply` against the machine's PostgreSQL, in a namespace of our own."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.cli.conftest import JITGRANT_BIN, PG_DSN, Namespace, head, jitgrant
from tests.helpers import AccessRepo, git, grant, utc

AUDIT_PATH = re.compile(
    r"^audit/(\d{4})/(\d{2})/(\d{2})/(\d{4})(\d{2})(\d{2})T\d{6}Z-[0-9a-f]+\.json$")


def audit_files(repo: AccessRepo) -> list[str]:
    root = repo.root / "audit"
    return sorted(p.relative_to(repo.root).as_posix() for p in root.rglob("*.json")) \
        if root.exists() else []


def secret_grant(repo: AccessRepo, name: str = "alice", **kwargs: object) -> tuple[str, str]:
    """Commit a grant with a verifier; return (password, verifier) to look for in outputs."""
    password = new_password()
    verifier = scram_sha256_verifier(password)
    repo.write(f"grants/db1/{name}.yaml", grant(verifier=verifier, **kwargs))  # type: ignore[arg-type]
    repo.commit(f"grant {name}")
    return password, verifier


def test_apply_creates_the_login_and_commits_one_audit_record(pg_repo: AccessRepo,
                                                             namespace: Namespace) -> None:
    expires = utc(hours=2)
    password, verifier = secret_grant(pg_repo, expires=expires, reason="INC-7 | check `x`")
    grant_commit = head(pg_repo)
    # A real process, as CI runs it.
    proc = subprocess.run([JITGRANT_BIN, "apply", "--repo", str(pg_repo.root)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **namespace.env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    login = namespace.login()
    assert f"+ create {login} for alice (readonly)" in proc.stdout
    assert "PASSWORD '********'" in proc.stdout

    audit_commit = head(pg_repo)
    assert audit_commit != grant_commit
    assert git(pg_repo.root, "rev-parse", "HEAD^") == grant_commit
    message = git(pg_repo.root, "log", "-1", "--format=%B")
    assert message.endswith("[skip ci]")
    [rel] = git(pg_repo.root, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert audit_files(pg_repo) == [rel]
    m = AUDIT_PATH.match(rel)
    assert m, rel
    assert m.group(1, 2, 3) == m.group(4, 5, 6)
    assert f"audit record: {rel} (committed, not pushed: no --push)" in proc.stdout
    assert git(pg_repo.root, "status", "--porcelain") == ""

    text = (pg_repo.root / rel).read_text()
    record = json.loads(text)
    assert record["commit"] == grant_commit
    assert [(t["target"], t["status"]) for t in record["targets"]] == [("db1", "ok")]
    [action] = record["actions"]
    assert {k: action[k] for k in ("target", "login", "grantee", "access", "action", "cause",
                                   "status", "error")} == {
        "target": "db1", "login": login, "grantee": "alice", "access": "readonly",
        "action": "create", "cause": "granted", "status": "ok", "error": None}
    assert action["expires"] == f"{expires:%Y-%m-%dT%H:%M:%SZ}"
    assert action["grant_files"] == ["grants/db1/alice.yaml"]
    [prov] = action["grants"]
    assert prov["commit"] == grant_commit and prov["reason"] == "INC-7 | check `x`"
    assert action["statements"] == 3

    role = namespace.role(login)
    assert role is not None and role["rolcanlogin"]
    assert role["rolvaliduntil"] == expires
    assert role["member_of"] == [namespace.group]
    assert role["rolpassword"] == verifier  # the server holds the verifier ...
    for secret in (password, verifier):  # ... and nothing else does
        assert secret not in proc.stdout + proc.stderr
        assert secret not in text
        assert secret not in message


def test_second_apply_changes_nothing_and_commits_nothing(pg_repo: AccessRepo,
                                                          namespace: Namespace) -> None:
    password, verifier = secret_grant(pg_repo)
    first = jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env)
    assert first.exit_code == 0, first.output
    after_first = head(pg_repo)
    second = jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env)
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == "target db1 (postgres): in sync"
    assert head(pg_repo) == after_first
    assert len(audit_files(pg_repo)) == 1
    for result in (first, second):
        assert password not in result.output and verifier not in result.output


def test_no_commit_writes_the_record_but_does_not_commit_it(pg_repo: AccessRepo,
                                                            namespace: Namespace) -> None:
    secret_grant(pg_repo)
    assert jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env).exit_code == 0
    pg_repo.remove("grants/db1/alice.yaml")
    before = pg_repo.commit("end alice's access")
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--no-commit", env=namespace.env)
    assert result.exit_code == 0, result.output
    assert f"- revoke {namespace.login()} for alice (readonly) [removed]" in result.stdout
    assert head(pg_repo) == before
    assert namespace.role(namespace.login()) is None
    [untracked] = git(pg_repo.root, "status", "--porcelain", "-uall").splitlines()
    assert untracked.startswith("?? audit/")
    newest = untracked[3:]
    assert f"audit record: {newest} (written, not committed: --no-commit)" in result.stdout
    assert AUDIT_PATH.match(newest) and len(audit_files(pg_repo)) == 2
    record = json.loads((pg_repo.root / newest).read_text())
    assert [(a["action"], a["cause"]) for a in record["actions"]] == [("revoke", "removed")]


def test_dry_run_prints_exactly_the_plan_and_changes_nothing(pg_repo: AccessRepo,
                                                             namespace: Namespace) -> None:
    password, verifier = secret_grant(pg_repo)
    before = head(pg_repo)
    planned = jitgrant("plan", "--repo", str(pg_repo.root), env=namespace.env)
    dry = jitgrant("apply", "--repo", str(pg_repo.root), "--dry-run", env=namespace.env)
    assert planned.exit_code == dry.exit_code == 2
    assert dry.stdout == planned.stdout and dry.stderr == planned.stderr
    assert "CREATE ROLE" in dry.stdout and "PASSWORD '********'" in dry.stdout
    assert namespace.role(namespace.login()) is None
    assert head(pg_repo) == before and audit_files(pg_repo) == []
    assert password not in dry.output + planned.output
    assert verifier not in dry.output + planned.output

    assert jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env).exit_code == 0
    planned = jitgrant("plan", "--repo", str(pg_repo.root), env=namespace.env)
    dry = jitgrant("apply", "--repo", str(pg_repo.root), "--dry-run", env=namespace.env)
    assert planned.exit_code == dry.exit_code == 0
    assert dry.stdout == planned.stdout


def test_apply_reads_head_and_leaves_the_working_tree_alone(pg_repo: AccessRepo,
                                                            namespace: Namespace) -> None:
    secret_grant(pg_repo)
    pg_repo.write("grants/db1/alice.yaml", grant(access="readwrite", expires=utc(hours=1)))
    pg_repo.write("grants/db1/bob.yaml", grant(grantee="bob"))
    result = jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env)
    assert result.exit_code == 0, result.output
    assert namespace.role(namespace.login()) is not None
    assert namespace.role(namespace.login("alice", "readwrite")) is None
    assert namespace.role(namespace.login("bob")) is None
    [rel] = git(pg_repo.root, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert rel.startswith("audit/")
    status = {line.strip() for line in git(pg_repo.root, "status", "--porcelain").splitlines()}
    assert status == {"M grants/db1/alice.yaml", "?? grants/db1/bob.yaml"}


def test_unknown_login_in_the_namespace_is_revoked_and_outsiders_survive(
        pg_repo: AccessRepo, namespace: Namespace) -> None:
    stray = f"{namespace.prefix}handmade"
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN VALID UNTIL 'infinity'").format(
            sql.Identifier(stray)))
    result = jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env)
    assert result.exit_code == 0, result.output
    assert f"- revoke {stray} [unknown]" in result.stdout
    assert namespace.role(stray) is None
    assert namespace.role(namespace.group) is not None  # outside the namespace
    [rel] = audit_files(pg_repo)
    [action] = json.loads((pg_repo.root / rel).read_text())["actions"]
    assert (action["login"], action["action"], action["cause"]) == (stray, "revoke", "unknown")


def test_missing_dsn_fails_the_target_without_an_audit(pg_repo: AccessRepo,
                                                       namespace: Namespace) -> None:
    secret_grant(pg_repo)
    before = head(pg_repo)
    result = jitgrant("apply", "--repo", str(pg_repo.root), env={namespace.dsn_env: ""})
    assert result.exit_code == 1
    assert f"environment variable {namespace.dsn_env} is not set" in result.stdout
    assert head(pg_repo) == before and audit_files(pg_repo) == []
    assert "Traceback" not in result.output


def test_apply_on_a_folder_that_is_not_a_repository(tmp_path: Path) -> None:
    result = jitgrant("apply", "--repo", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"jitgrant: error: {tmp_path}: not a git repository (use --repo)\n"


def test_the_audit_names_who_commits_it_never_unknown(pg_repo: AccessRepo, namespace: Namespace,
                                                      tmp_path: Path) -> None:
    """Issue 12, finding 4: with no git identity anywhere (a bare runner, the demo), the
    record is committed as jitgrant, and its actor says so instead of 'unknown'."""
    secret_grant(pg_repo)
    git(pg_repo.root, "config", "--unset", "user.name")
    git(pg_repo.root, "config", "--unset", "user.email")
    bare = {k: None for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                              "GIT_COMMITTER_EMAIL", "GITHUB_ACTOR", "EMAIL")}
    env = {**namespace.env, **bare, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "XDG_CONFIG_HOME": str(tmp_path)}
    result = jitgrant("apply", "--repo", str(pg_repo.root), env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    [rel] = audit_files(pg_repo)
    record = json.loads((pg_repo.root / rel).read_text())
    assert record["actor"] == "jitgrant <jitgrant@localhost>"
    assert git(pg_repo.root, "log", "-1", "--format=%cn <%ce>") == record["actor"]
