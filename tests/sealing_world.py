"""Helpers for sealed delivery's tests: SSH keys made with ssh-keygen, a policy whose people
have them, sealed grant files, and the sealed file at a repository's HEAD."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import AccessRepo, git, grant, policy


def ssh_key(folder: Path, name: str, kind: str = "ed25519") -> tuple[Path, str]:
    """A new unencrypted SSH key pair: (private key path, public key line)."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (openssh-client)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    extra = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", name, "-f",
                    str(path)], check=True, capture_output=True)
    return path, path.with_suffix(".pub").read_text().strip()


def sealed_policy(keys: dict[str, list[str]], **kwargs: Any) -> dict[str, Any]:
    """tests.helpers.policy with people.<handle>.keys."""
    data = policy(**kwargs)
    for handle, listed in keys.items():
        data["people"][handle]["keys"] = listed
    return data


def sealed_grant(**kwargs: Any) -> dict[str, Any]:
    data = grant(**kwargs)
    data["delivery"] = "sealed"
    return data


def sealed_at_head(repo: AccessRepo, target: str, login: str) -> dict[str, Any] | None:
    """The sealed file at HEAD, parsed; None when HEAD has none."""
    listed = git(repo.root, "ls-tree", "--name-only", "HEAD", f"sealed/{target}/{login}.yaml")
    if not listed:
        return None
    loaded = yaml.safe_load(git(repo.root, "show", f"HEAD:sealed/{target}/{login}.yaml"))
    assert isinstance(loaded, dict)
    return loaded
