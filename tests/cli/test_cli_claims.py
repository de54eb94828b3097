"""Command-line behaviours the README promised without a test (issue 12, finding 11): exit 3
and `-v` on an unexpected error, `apply --rev` and `--target`, the one-writer lock on the audit
commit, and `demo --keep`."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler import render
from tests.cli.conftest import JITGRANT_BIN, Namespace, head, jitgrant
from tests.helpers import AccessRepo, git, grant, utc

BUG_LINE = "This is a bug in jitgrant. Please report it with the output of -v."


def _boom(*_: object, **__: object) -> str:
    raise RuntimeError("boom in the renderer")


def test_an_unexpected_error_is_exit_3_and_v_shows_the_traceback(
        repo: AccessRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug stands in for any unexpected error: jitgrant's own renderer raises (not a
    database or git stand-in)."""
    monkeypatch.setattr(render, "plan_text", _boom)
    plain = jitgrant("plan", "--offline", "--repo", str(repo.root))
    assert plain.exit_code == 3
    assert plain.stderr.splitlines() == [
        "jitgrant: internal error: RuntimeError('boom in the renderer')", BUG_LINE]
    verbose = jitgrant("-v", "plan", "--offline", "--repo", str(repo.root))
    assert verbose.exit_code == 3
    assert verbose.stderr.startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom in the renderer" in verbose.stderr
    assert verbose.stderr.endswith(BUG_LINE + "\n")


def test_v_shows_the_traceback_of_a_user_error_too(repo: AccessRepo) -> None:
    plain = jitgrant("plan", "--offline", "--repo", str(repo.root), "--rev", "no-such-ref")
    assert plain.exit_code == 1 and plain.stderr.count("\n") == 1
    verbose = jitgrant("-v", "plan", "--offline", "--repo", str(repo.root), "--rev",
                       "no-such-ref")
    assert verbose.exit_code == 1
    assert verbose.stderr.startswith("Traceback (most recent call last):")
    assert verbose.stderr.splitlines()[-1] == plain.stderr.strip()


def test_apply_rev_reconciles_that_commit(pg_repo: AccessRepo, namespace: Namespace) -> None:
    pg_repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    granted = pg_repo.commit("alice's grant")
    pg_repo.remove("grants/db1/alice.yaml")
    pg_repo.commit("alice is done")
    login = namespace.login()
    older = jitgrant("apply", "--repo", str(pg_repo.root), "--rev", granted,
                     env=namespace.env)
    assert older.exit_code == 0, older.stderr
    assert f"+ create {login} for alice (readonly)" in older.stdout
    assert namespace.role(login) is not None
    latest = jitgrant("apply", "--repo", str(pg_repo.root), env=namespace.env)
    assert latest.exit_code == 0, latest.stderr
    assert namespace.role(login) is None


def test_apply_target_reconciles_that_target_only(tmp_path: Path,
                                                  namespace: Namespace) -> None:
    """db2's DSN variable is unset: a run of every target fails on it, `--target db1` does
    not look at it."""
    repo = AccessRepo(tmp_path / "repo")
    data = namespace.policy()
    data["targets"]["db2"] = dict(data["targets"]["db1"], dsn_env="JG_CLAIMS_UNSET_DSN")
    repo.write("policies/main.yaml", data)
    repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    repo.commit("two targets")
    env = {**namespace.env, "JG_CLAIMS_UNSET_DSN": ""}
    dry = jitgrant("apply", "--repo", str(repo.root), "--dry-run", env=env)
    assert dry.exit_code == 1 and "db2" in dry.stdout + dry.stderr
    only = jitgrant("apply", "--repo", str(repo.root), "--target", "db1", env=env)
    assert only.exit_code == 0, only.stdout + only.stderr
    assert "db2" not in only.stdout + only.stderr
    assert namespace.role(namespace.login()) is not None


def _waiters(path: Path) -> set[int]:
    """Pids waiting for a flock on `path`, from /proc/locks (`-> FLOCK ... pid dev:inode`)."""
    inode = os.stat(path).st_ino
    found = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:
            pid, where = fields[fields.index("->") + 4], fields[fields.index("->") + 5]
            if int(where.rsplit(":", 1)[1]) == inode:
                found.add(int(pid))
    return found


def test_the_audit_commit_waits_for_the_checkouts_lock(pg_repo: AccessRepo,
                                                       namespace: Namespace) -> None:
    pg_repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    granted = pg_repo.commit("alice's grant")
    lock_path = pg_repo.root / ".git" / "jitgrant-audit.lock"
    with open(lock_path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a second run sharing this checkout would
        proc = subprocess.Popen([JITGRANT_BIN, "apply", "--repo", str(pg_repo.root)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **namespace.env})
        deadline = time.monotonic() + 60  # a bound on the wait, not an assertion on time
        while proc.pid not in _waiters(lock_path):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "apply never waited for the lock"
            time.sleep(0.05)
        assert head(pg_repo) == granted  # the database is done, the commit waits
        assert namespace.role(namespace.login()) is not None
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert git(pg_repo.root, "rev-parse", "HEAD^") == granted


def test_demo_keep_leaves_the_access_repository() -> None:
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "demo", "--keep"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the server's removed at the end" in proc.stdout
    match = re.search(r"the access repository is kept in (\S+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    kept = Path(match.group(1))
    try:
        assert (kept / "policies").is_dir() and (kept / "audit").is_dir()
        assert "[skip ci]" in git(kept, "log", "-1", "--format=%s")
        assert git(kept, "status", "--porcelain") == ""
    finally:
        shutil.rmtree(kept.parent, ignore_errors=True)
