"""Test helpers: temporary access repositories with a fixed git identity."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.load import Document, YamlProblem, parse_full

IDENTITY = {"GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "ci@example.com"}


def skip_if_no_index(failed: subprocess.CompletedProcess[str], tmp: Path,
                     probe: str = "click") -> None:
    """A pip failure is the project's unless the package index (PyPI, or the mirror pip is
    configured with) cannot give `probe`: then the test skips, saying so. A machine without
    network runs the rest of the suite."""
    checked = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest",
                              str(tmp / "probe"), probe], capture_output=True, text=True,
                             timeout=300)
    if checked.returncode != 0:
        pytest.skip(f"the package index (PyPI or pip's configured mirror) cannot give {probe}: "
                    + (checked.stderr.strip().splitlines() or ["pip download failed"])[-1])
    raise AssertionError(failed.stdout[-3000:] + failed.stderr[-3000:])


def utc(**delta: float) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(**delta)).replace(microsecond=0)


def stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **IDENTITY, **(env or {})}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=full_env)
    if proc.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


class AccessRepo:
    """A git repository laid out like an access repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        git(root, "init", "-q", "-b", "main")
        git(root, "config", "user.name", "Test Committer")
        git(root, "config", "user.email", "ci@example.com")

    def write(self, rel: str, content: str | bytes | dict[str, Any]) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
        if isinstance(content, str):
            content = textwrap.dedent(content).encode()
        path.write_bytes(content)
        return path

    def commit(self, message: str = "change", **env: str) -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message, env=env)
        return git(self.root, "rev-parse", "HEAD")

    def remove(self, rel: str) -> None:
        git(self.root, "rm", "-q", rel)


def policy(target: str = "db1", engine: str = "postgres", dsn_env: str = "JG_DSN",
           prefix: str = "jit_", groups: tuple[str, ...] = ("app_readonly",),
           **target_extra: Any) -> dict[str, Any]:
    return {
        "targets": {target: {"engine": engine, "dsn_env": dsn_env, "environment": "production",
                             "role_prefix": prefix, **target_extra}},
        "access": {
            "readonly": {"roles": list(groups), "max_duration": "8h", "connection_limit": 3},
            "readwrite": {"roles": list(groups), "max_duration": "2h",
                          "allowed_groups": ["sre"]},
            "staging-only": {"roles": list(groups), "max_duration": "8h",
                             "environments": ["staging"]},
        },
        "people": {
            "alice": {"email": "alice@example.com", "github": "alice-gh", "groups": ["sre"]},
            "bob": {"email": "bob@example.com", "github": "bob-gh", "groups": ["backend"]},
            "carol": {"email": "carol@example.com", "groups": ["backend"], "active": False},
        },
    }


def grant(grantee: str = "alice", target: str = "db1", access: str = "readonly",
          expires: datetime | None = None, starts: datetime | None = None,
          verifier: str | None = None, reason: str = "INC-1 look at things") -> dict[str, Any]:
    data: dict[str, Any] = {"grantee": grantee, "target": target, "access": access,
                            "expires": stamp(expires or utc(hours=2)), "reason": reason}
    if starts is not None:
        data["starts"] = stamp(starts)
    if verifier is not None:
        data["password_verifier"] = verifier
    return data


def agrees_with_the_full_loader(fast: Document | None, text: str) -> None:
    """A fast YAML path's Document (None: it stepped aside) is what parse_full gives."""
    if fast is None:
        return
    try:
        full = parse_full("f.yaml", text)
    except YamlProblem as exc:
        raise AssertionError(f"fast path accepted what YAML rejects: {exc.message}") from None
    assert (fast.data, fast.lines) == (full.data, full.lines)
