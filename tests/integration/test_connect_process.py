"""`jitgrant connect` becomes the client: the same process (so Ctrl-C, sent to the foreground
process, reaches psql and cancels its query) with the user's other client settings kept.
README claims (issue 12, finding 11) that had no test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.integration.conftest import World
from tests.integration.test_connect import (
    CLIENT_VARS,
    JITGRANT_BIN,
    config_dir,  # noqa: F401 - a fixture
    pg_world_for_connect,
)

SHOW = "echo $PPID; tr '\\0' '\\n' < /proc/$PPID/environ | grep -e '^PGSSLMODE=' " \
       "-e '^PGCONNECT_TIMEOUT=' | sort"


def test_psql_replaces_jitgrant_and_keeps_the_other_client_settings(
        scram_world: World, config_dir: Path) -> None:  # noqa: F811
    pg_world_for_connect(scram_world)
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARS and
           not k.startswith("JG_")}
    env.update(JITGRANT_CONFIG_DIR=str(config_dir), PGSSLMODE="disable", PGCONNECT_TIMEOUT="7")
    proc = subprocess.Popen(
        [JITGRANT_BIN, "connect", "--repo", str(scram_world.repo.root), "db1", "--as", "alice",
         "--", "-X", "-A", "-t", "-c", "select current_user", "-c", f"\\! {SHOW}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    login, pid, *settings = out.splitlines()
    assert login == scram_world.login()
    # psql's process id is the one jitgrant started with: it exec'd, no parent stays around.
    assert int(pid) == proc.pid
    assert settings == ["PGCONNECT_TIMEOUT=7", "PGSSLMODE=disable"]
