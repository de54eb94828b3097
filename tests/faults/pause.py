"""A TEST HOOK, never imported by jitgrant itself: `python -m tests.faults.pause N LOCK <jitgrant
arguments>` runs the real `jitgrant` command line, pausing before the Nth statement that changes
a MySQL server (CREATE, GRANT, REVOKE, ALTER, SET DEFAULT ROLE, KILL, DROP).

MySQL DDL commits statement by statement and jitgrant sends each on its own, but nothing the
test can hold blocks statement N and not the ones before it (they all write mysql.global_priv).
So the pause is itself a lock wait: before statement N the connection runs
`SELECT GET_LOCK(LOCK, 60)`, a lock the test holds. The test sees that connection waiting in
the process list and cuts it (KILL CONNECTION) or kills this process, exactly there. Nothing
is replaced: every statement still reaches the real server, unchanged and in order."""

from __future__ import annotations

import sys
from typing import Any

from pymysql.cursors import Cursor

CHANGES = ("CREATE ", "GRANT ", "REVOKE ", "ALTER ", "SET DEFAULT ROLE", "KILL ", "DROP ")


def install(position: int, lock: str) -> None:
    original = Cursor.execute
    seen = 0

    def execute(self: Cursor, query: str, args: Any = None) -> int:
        nonlocal seen
        if query.lstrip().upper().startswith(CHANGES):
            seen += 1
            if seen == position:
                original(self, "SELECT GET_LOCK(%s, 60)", [lock])
                original(self, "SELECT RELEASE_LOCK(%s)", [lock])
        return int(original(self, query, args))

    Cursor.execute = execute


if __name__ == "__main__":
    install(int(sys.argv[1]), sys.argv[2])
    from reconciler.cli import main

    main(sys.argv[3:], prog_name="jitgrant")
