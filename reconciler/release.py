"""The commit this jitgrant was released from, when it is known: `init` pins the workflows
it writes to it. A release build records it (hatch_build.py); a source checkout at the
release tag knows it from git. Anything else (a branch, a dirty tree) knows none."""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__

_RECORD = Path(__file__).parent / "_release_commit"
_SHA = re.compile(r"[0-9a-f]{40}")


def release_commit(source: Path | None = None) -> str | None:
    """The recorded commit, else the source checkout's HEAD if it is the tag v<version>."""
    if _RECORD.is_file():
        recorded = _RECORD.read_text().strip()
        return recorded if _SHA.fullmatch(recorded) else None
    root = source or Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    from . import gitrepo  # the only module that imports git

    return gitrepo.commit_at_tag(root, f"v{__version__}")
