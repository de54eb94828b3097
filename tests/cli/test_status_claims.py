"""`jitgrant status` and `connect` without a server: `master` as the mainline, the
`offboarded` state, a MySQL target's `--print-env`, and the refusal to print a password to a
terminal. README claims (issue 12, finding 11) that had no test."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler import secretstore
from reconciler.credentials import mysql_native_verifier, new_password
from tests.cli.conftest import JITGRANT_BIN, jitgrant
from tests.helpers import AccessRepo, git, grant, policy, utc

CONNECT = {"host": "127.0.0.1", "port": 5432, "dbname": "postgres"}


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


def status(repo: AccessRepo, *args: str) -> dict[str, Any]:
    result = jitgrant("status", "--repo", str(repo.root), "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def new_repo(root: Path, branch: str = "main", **target: Any) -> AccessRepo:
    repo = AccessRepo(root)
    if branch != "main":
        git(root, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    repo.write("policies/main.yaml", policy(connect=CONNECT, **target))
    repo.commit("policy")
    return repo


def test_master_is_the_mainline_when_there_is_no_main(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo", branch="master")
    repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    repo.commit("alice's grant")
    git(repo.root, "checkout", "-q", "-b", "access/alice/db1-readwrite")
    repo.write("grants/db1/asked.yaml", grant(access="readwrite", expires=utc(hours=1)))
    repo.commit("a request")
    data = status(repo)
    assert data["base"] == "master"
    assert {(g["file"], g["branch"]): g["state"] for g in data["grants"]} == {
        ("grants/db1/alice.yaml", None): "active",
        ("grants/db1/asked.yaml", "access/alice/db1-readwrite"): "pending"}


def test_offboarded_is_a_grantee_inactive_or_gone_from_people(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    repo.write("grants/db1/bob.yaml", grant(grantee="bob", expires=utc(hours=2)))
    repo.commit("grants")
    data = policy(connect=CONNECT)
    data["people"]["alice"]["active"] = False
    del data["people"]["bob"]
    repo.write("policies/main.yaml", data)
    repo.commit("alice and bob leave")
    found = {g["file"]: g["state"] for g in status(repo, "--all")["grants"]}
    assert found == {"grants/db1/alice.yaml": "offboarded",
                     "grants/db1/bob.yaml": "offboarded"}


def mysql_repo(root: Path) -> AccessRepo:
    repo = new_repo(root, engine="mysql")
    data = policy(engine="mysql", connect={"host": "db.internal", "port": 3307,
                                           "dbname": "orders"})
    repo.write("policies/main.yaml", data)
    repo.write("grants/db1/alice.yaml", grant(
        expires=utc(hours=2), verifier=mysql_native_verifier(new_password())))
    repo.commit("a mysql target and alice's grant")
    return repo


@pytest.mark.prints_password  # on purpose: the secret scan skips its outputs
def test_print_env_for_a_mysql_target(tmp_path: Path) -> None:
    repo = mysql_repo(tmp_path / "repo")
    password = new_password()
    secretstore.save("db1", "jit_alice_readonly", password)
    result = jitgrant("connect", "--repo", str(repo.root), "db1", "--as", "alice",
                      "--print-env")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# jitgrant: jit_alice_readonly on db1, valid until ")
    assert lines[1:] == ["export MYSQL_HOST=db.internal", "export MYSQL_TCP_PORT=3307",
                         f"export MYSQL_PWD={password}",
                         "# then: mariadb --user=jit_alice_readonly --database=orders"]
    assert result.stderr.startswith("warning: the output holds the password")
    pgpass = jitgrant("connect", "--repo", str(repo.root), "db1", "--as", "alice", "--pgpass")
    assert pgpass.exit_code == 1 and password not in pgpass.stdout + pgpass.stderr


@pytest.mark.parametrize("option", ["--print-env", "--pgpass"])
def test_the_password_is_never_printed_to_a_terminal(tmp_path: Path, option: str) -> None:
    """stdout is a pseudo-terminal, as in an interactive shell: one line, exit 1, and no
    password anywhere."""
    repo = new_repo(tmp_path / "repo")
    repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    repo.commit("alice's grant")
    password = new_password()
    secretstore.save("db1", "jit_alice_readonly", password)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [JITGRANT_BIN, "connect", "--repo", str(repo.root), "db1", "--as", "alice", option],
            stdout=follower, stderr=subprocess.PIPE, text=True, timeout=60,
            env={**os.environ, "JITGRANT_CONFIG_DIR": str(tmp_path / "config")})
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 1
    assert proc.stderr.startswith("jitgrant: error: this prints the password")
    assert proc.stderr.count("\n") == 1
    assert password.encode() not in shown and password not in proc.stderr
