"""`jitgrant apply` as a separate process, the way CI and cron run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_apply(repo: Path, env: dict[str, str], *extra: str,
                launcher: Sequence[str] = ("-m", "reconciler.cli")) -> subprocess.Popen[str]:
    """`apply --no-commit` on `repo`; `launcher` may put a test hook in front of the CLI."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *launcher, "apply", "--no-commit", "--repo",
                             str(repo), *extra], env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(what: str, found: Callable[[], int | None], proc: subprocess.Popen[str],
             seconds: float = 20) -> int:
    """Poll until `found` returns an id; fail with apply's output if apply ended first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"apply ended before {what}: {proc.communicate()[0]}")
        time.sleep(0.02)
    raise AssertionError(f"apply never reached {what}")


def wait_gone(gone: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not gone():
        if time.monotonic() > deadline:
            raise AssertionError("the killed run's server connection did not end")
        time.sleep(0.02)
