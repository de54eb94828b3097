"""Shell completion through click's built-in protocol, as bash drives it: the installed command
in a subprocess with _JITGRANT_COMPLETE=bash_complete, COMP_WORDS and COMP_CWORD, in a
temporary access repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import JITGRANT_BIN
from tests.cli.test_targets import three_targets
from tests.helpers import AccessRepo, grant


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", three_targets())
    r.write("grants/db1/alice-readonly.yaml", grant())
    r.write("grants/orders-prod/bob.yml", grant("bob", "orders-prod"))
    r.write("grants/orders-prod/notes.txt", "not a grant\n")
    r.commit("policy")
    return r


def complete(line: str, cwd: Path) -> list[str]:
    """What bash would offer after `line` (a trailing space: a new word is being started)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {**os.environ, "_JITGRANT_COMPLETE": "bash_complete", "COMP_WORDS": line,
           "COMP_CWORD": str(cword)}
    proc = subprocess.run([JITGRANT_BIN], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [item.split(",", 1)[1] for item in proc.stdout.splitlines() if item]


@pytest.mark.parametrize(("line", "offered"), [
    ("jitgrant request ", ["db1", "orders-prod", "orders-staging"]),
    ("jitgrant request ord", ["orders-prod", "orders-staging"]),
    ("jitgrant connect d", ["db1"]),
    ("jitgrant plan --target ", ["db1", "orders-prod", "orders-staging"]),
    ("jitgrant apply --target db1 --target orders-s", ["orders-staging"]),
    ("jitgrant standing --target o", ["orders-prod", "orders-staging"]),
    ("jitgrant audit --target d", ["db1"]),
])
def test_target_names(repo: AccessRepo, line: str, offered: list[str]) -> None:
    assert complete(line, repo.root) == offered


def test_access_levels_usable_on_the_target_given(repo: AccessRepo) -> None:
    assert complete("jitgrant request db1 ", repo.root) == ["readonly", "readwrite"]
    assert complete("jitgrant request orders-staging ", repo.root) == [
        "readonly", "readwrite", "staging-only"]
    assert complete("jitgrant request orders-staging read", repo.root) == [
        "readonly", "readwrite"]
    assert complete("jitgrant connect db1 r", repo.root) == ["readonly", "readwrite"]


@pytest.mark.parametrize("command", ["extend", "revoke", "password"])
def test_grant_files(repo: AccessRepo, command: str) -> None:
    assert complete(f"jitgrant {command} ", repo.root) == [
        "grants/db1/alice-readonly.yaml", "grants/orders-prod/bob.yml"]
    assert complete(f"jitgrant {command} grants/o", repo.root) == ["grants/orders-prod/bob.yml"]


def test_people_for_as(repo: AccessRepo) -> None:
    # carol has left (active: false): nobody asks for her any more.
    assert complete("jitgrant targets --as ", repo.root) == ["alice", "bob"]
    assert complete("jitgrant request db1 readonly --as b", repo.root) == ["bob"]


def test_repo_names_the_repository(repo: AccessRepo) -> None:
    outside = repo.root.parent
    assert complete("jitgrant revoke --repo repo g", outside) == [
        "grants/db1/alice-readonly.yaml", "grants/orders-prod/bob.yml"]
    assert complete("jitgrant plan --repo repo --target db", outside) == ["db1"]


def test_outside_a_repository_or_with_broken_policies_nothing_is_offered(
        repo: AccessRepo, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert complete("jitgrant request ", empty) == []
    assert complete("jitgrant extend ", empty) == []
    (repo.root / "policies/main.yaml").write_text("targets: [\n")
    assert complete("jitgrant request ", repo.root) == []


def test_the_bash_script_and_command_names(repo: AccessRepo) -> None:
    proc = subprocess.run([JITGRANT_BIN], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "_JITGRANT_COMPLETE": "bash_source"})
    assert proc.returncode == 0
    assert "_JITGRANT_COMPLETE=bash_complete" in proc.stdout
    assert {"targets", "request", "status"} <= set(complete("jitgrant ", repo.root))
