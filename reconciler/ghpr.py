"""The one place jitgrant runs GitHub's `gh` command: opening a request's pull request.

`jitgrant request --open-pr` (the request workflow, see templates/ci/github) pushes the branch
and then runs `gh pr create`, with GH_TOKEN from the environment as gh reads it. The title and
body are ours; gh's own words are not passed on (a new gh release changes them)."""

from __future__ import annotations

import shutil
import subprocess

from .errors import UserError


def open_pull_request(branch: str, base: str | None, title: str, body: str) -> str:
    """Run `gh pr create`; return what it printed last (the pull request's address)."""
    gh = shutil.which("gh")
    if gh is None:
        raise UserError(f"--open-pr needs GitHub's gh command on PATH; the branch {branch} is "
                        "pushed: open its pull request by hand")
    argv = [gh, "pr", "create", "--head", branch, *(["--base", base] if base else []),
            "--title", title, "--body", body]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode != 0:
        raise UserError(f"gh pr create failed for {branch} (exit "
                        f"{'none' if done is None else done.returncode}); the branch is "
                        "pushed: open its pull request by hand")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""
