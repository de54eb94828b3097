"""Stop `jitgrant apply` at one statement of its PostgreSQL plan, for real and without a hook.

The test holds a lock that the statement needs (a conflicting table lock on the catalog it
writes, or on a table the login owns), waits until apply's backend is blocked by it, then
cuts the connection (`pg_terminate_backend`) or kills the process (SIGKILL). The fast path
sends a whole phase in one round trip, so a lock is the only way to stop between two of its
statements."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.conftest import PgServer
from tests.faults.apply_proc import wait_for, wait_gone

KILLS = ("cut", "sigkill")


def lock(table: str, mode: str, database: str | None = None) -> tuple[str | None, str]:
    return database, f"LOCK TABLE {table} IN {mode} MODE"


@dataclass(frozen=True)
class Stop:
    """Where apply stops: `statement` is how the stopped statement starts. `locks` are taken one
    after another: apply runs until it waits on the first; the next is taken while it waits,
    then the one before is let go, so apply runs on until the next one (for a statement that
    needs a lock an earlier statement of the same run also needs)."""

    statement: str
    locks: tuple[tuple[str | None, str], ...]

    def __str__(self) -> str:
        return self.statement


@dataclass
class Stopped:
    code: int
    output: str


def _holder(server: PgServer, database: str | None, statement: str) -> psycopg.Connection[Any]:
    conn = server.conn(database)
    conn.execute("SET lock_timeout = '20s'")  # a test that goes wrong fails, never hangs
    conn.execute("BEGIN")
    conn.execute(statement.encode())
    return conn


def _blocked_by(asking: psycopg.Connection[Any], holder: int) -> int | None:
    """A jitgrant backend that waits on a lock `holder` has. Activity is read once per
    transaction unless the snapshot is cleared."""
    asking.execute("SELECT pg_stat_clear_snapshot()")
    row = asking.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'jitgrant'"
                         " AND %s = ANY(pg_blocking_pids(pid))", [holder]).fetchone()
    return int(row[0]) if row else None


def stop_apply(server: PgServer, stop: Stop, how: str,
               start: Any) -> Stopped:
    """Run `start()` (a Popen of apply), stop it at `stop`, end it as `how`; return its exit
    code and output once its server connection is gone too."""
    held: list[psycopg.Connection[Any]] = []
    proc: subprocess.Popen[str] | None = None
    side = server.conn()
    try:
        for n, (database, statement) in enumerate(stop.locks):
            held.append(_holder(server, database, statement))
            holder = held[-1].info.backend_pid
            # A holder that reads pg_stat_activity keeps a lock on pg_database until it lets
            # go, so the others are watched from the side; the last one asks itself, since
            # its own lock may be the one on pg_database that keeps connections waiting.
            asking = held[-1] if n == len(stop.locks) - 1 else side
            if proc is None:
                proc = start()
            else:
                held[n - 1].execute("COMMIT")
            pid = wait_for(f"{stop} (lock {n})",
                           lambda a=asking, h=holder: _blocked_by(a, h), proc)  # type: ignore[misc]
        assert proc is not None
        if how == "cut":
            held[-1].execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        else:
            proc.send_signal(signal.SIGKILL)
        output = proc.communicate(timeout=30)[0]
    finally:
        side.close()
        for conn in held:
            conn.close()  # rolls back: the lock goes
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    with server.conn() as c:  # after SIGKILL the backend finishes its statement, then sees EOF
        wait_gone(lambda: c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                    [pid]).fetchone() is None)
    return Stopped(proc.returncode, output)
