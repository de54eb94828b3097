"""A generated access repository: one target, one access level, N people with one grant each."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.credentials import mysql_native_verifier, new_password
from reconciler.timeutil import iso

TARGET = "bench"
ACCESS = "readonly"
DSN_ENV = "JITGRANT_BENCH_TARGET_DSN"
LIFETIME = timedelta(hours=4)  # under the access level's 8h
IDENTITY = {"GIT_AUTHOR_NAME": "Bench Author", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench Committer", "GIT_COMMITTER_EMAIL": "ci@example.com"}


@dataclass(frozen=True)
class AccessRepo:
    root: Path
    grants: int
    expires: datetime  # every grant's expiry


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}, check=True)
    return proc.stdout.strip()


def person(index: int) -> str:
    return f"p{index:06d}"


def build(root: Path, grants: int, prefix: str, group: str, now: datetime,
          verifiers: bool = False, engine: str = "postgres") -> AccessRepo:
    """Write policies + `grants` grant files and commit them in a new repository at `root`.
    With `verifiers` each postgres grant carries a SCRAM-SHA-256 password verifier; a mysql
    grant always carries a mysql_native_password hash (the engine requires one)."""
    expires = now.replace(microsecond=0) + LIFETIME
    verifier = _verifier(engine, verifiers)
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", IDENTITY["GIT_COMMITTER_NAME"])
    git(root, "config", "user.email", IDENTITY["GIT_COMMITTER_EMAIL"])
    (root / "policies").mkdir()
    (root / "policies" / "targets.yaml").write_text(_targets(prefix, group, engine))
    (root / "policies" / "people.yaml").write_text(_people(grants))
    folder = root / "grants" / TARGET
    folder.mkdir(parents=True)
    for index in range(grants):
        (folder / f"{person(index)}-{ACCESS}.yaml").write_text(_grant(index, expires, verifier))
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", f"{grants} grants on {TARGET}")
    return AccessRepo(root, grants, expires)


def _verifier(engine: str, verifiers: bool) -> Callable[[], str] | None:
    if engine == "mysql":
        return mysql_verifier
    return fake_verifier if verifiers else None


def _targets(prefix: str, group: str, engine: str) -> str:
    return f"""targets:
  {TARGET}:
    engine: {engine}
    dsn_env: {DSN_ENV}
    environment: production
    role_prefix: {prefix}
access:
  {ACCESS}:
    description: Read-only access to the application schemas
    roles: [{group}]
    max_duration: 8h
    connection_limit: 3
"""


def _people(count: int) -> str:
    lines = ["people:"]
    for index in range(count):
        name = person(index)
        lines += [f"  {name}:", f"    email: {name}@example.com", "    groups: [backend]"]
    return "\n".join(lines) + "\n"


def _grant(index: int, expires: datetime, verifier: Callable[[], str] | None) -> str:
    text = (f"grantee: {person(index)}\ntarget: {TARGET}\naccess: {ACCESS}\n"
            f"expires: {iso(expires)}\nreason: BENCH-{index} load test\nticket: BENCH-{index}\n")
    return text + (f"password_verifier: \"{verifier()}\"\n" if verifier else "")


def fake_verifier() -> str:
    """A well-formed SCRAM-SHA-256 verifier of random keys, shaped like what `jitgrant request`
    writes, without its PBKDF2 cost on our side (nobody logs in here). The server still runs
    PBKDF2 once per CREATE ROLE: it checks that the verifier is not that of an empty password."""
    def b64(n: int) -> str:
        return base64.b64encode(secrets.token_bytes(n)).decode()
    return f"SCRAM-SHA-256$4096:{b64(16)}${b64(32)}:{b64(32)}"


def mysql_verifier() -> str:
    """The mysql_native_password hash of a random password: two SHA-1s, nothing to save."""
    return mysql_native_verifier(new_password())
