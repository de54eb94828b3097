"""Build hook: a release build records the commit it was built from, so `jitgrant init` can pin
the workflows it writes to that commit (`uses: jitgrant/jitgrant@<sha> # v<version>`) instead
of a tag a repository owner could move.

Only a build from a clean checkout whose HEAD is the tag `v<version>` records it; any other
build (a branch, a dirty tree, an sdist without .git) records nothing and `init` falls back to
the tag, saying how to pin it. A wheel built from a release's sdist keeps the sdist's file."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

RECORD = "reconciler/_release_commit"


def _git(root: str, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def release_commit(root: str, version: str) -> str | None:
    """HEAD's commit when the checkout is clean and HEAD is the tag v<version>."""
    if not (Path(root) / ".git").exists():
        return None
    head = _git(root, "rev-parse", "HEAD")
    tagged = _git(root, "rev-parse", f"refs/tags/v{version}^{{commit}}")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    return head if head and head == tagged and dirty == "" else None


class ReleaseCommitHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        commit = release_commit(self.root, self.metadata.version)
        if commit is None:
            return
        out = Path(tempfile.mkdtemp()) / "_release_commit"
        out.write_text(commit + "\n")
        build_data["force_include"][str(out)] = RECORD
