"""`jitgrant demo`, as a user runs it: the whole story on an embedded PostgreSQL."""

from __future__ import annotations

import subprocess
import sys


def test_demo_tells_the_whole_story() -> None:
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "demo"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for line in ("all files valid", "+ create jit_alice_readonly",
                 "connected as jit_alice_readonly; 2 stuck orders",
                 "bob, new login: refused: password authentication failed",
                 "bob, open session: still running", "- revoke jit_bob_readonly",
                 "bob, open session: ended", "cause=expired status=ok sessions_ended=1"):
        assert line in out, line
    assert "PASSWORD '********'" in out and "SCRAM-SHA-256$" not in out
