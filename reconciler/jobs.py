"""Bounded work over many targets: `--jobs N` connections at once, whatever the number of targets.

The bound is global: a run never holds more than N of the reconciler's connections at once, so
no server is ever given more than N either, however many of the targets live on it (200 targets
on one server with max_connections = 100 take turns, eight at a time by default). Targets are
told apart by their server, read from the DSN the way the engine's driver reads it: the
targets of one server are spread over the run rather than bunched, so that a fleet of servers
shares the N connections, and the targets that share a server and a role prefix (and so one
lock) run one after another in the same worker, each in its turn.

A target holds one connection while it is read and reconciled; only while a revoked login's
objects are reassigned or dropped in another database of the same server does it open a
second one, to that database, for as long as that takes.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO, TypeVar

from .dsn import admin_dsn_or_none

if TYPE_CHECKING:  # the CLI imports DEFAULT_JOBS when it starts: nothing more
    from .model import Target

DEFAULT_JOBS = 8
# A progress line is worth its flicker only when the run is long enough to wonder about.
PROGRESS_FROM = 10

T = TypeVar("T")
R = TypeVar("R")


def server_of(target: Target, dsn: str | None) -> str:
    """`engine:host:port` of the server the DSN names, read with the engine driver's own parser;
    a DSN that cannot be read is a server of its own (connecting reports the mistake)."""
    if not dsn:
        return f"unset:{target.name}"
    try:
        if target.engine == "postgres":
            return "postgres:" + _postgres_server(dsn)
        if target.engine == "mysql":
            return "mysql:" + _mysql_server(dsn)
    except Exception:  # noqa: BLE001 - the connection says what is wrong with the DSN
        pass
    return f"unread:{target.name}"


def _postgres_server(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    # libpq's defaults: the environment, then the local socket and 5432
    host = str(params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST")
               or "local socket")
    port = str(params.get("port") or os.environ.get("PGPORT") or 5432)
    return f"{host}:{port}"


def _mysql_server(dsn: str) -> str:
    from .engines.mysql import parse_dsn

    args = parse_dsn(dsn)
    if args.get("unix_socket"):
        return f"socket {args['unix_socket']}"
    return f"{args['host']}:{args['port']}"


def tasks(targets: Sequence[Target], env: Mapping[str, str], execute: bool
          ) -> list[list[Target]]:
    """The targets as tasks, each a list run one after another in one worker: a target alone,
    or, when executing, the targets that share a server and a role prefix (their lock is one
    and the same). The servers take turns in the order: the first task of every server, then
    the second of each, so that no server waits for another's long queue."""
    by_server: dict[str, dict[tuple[str, str], list[Target]]] = {}
    for target in targets:
        server = server_of(target, admin_dsn_or_none(target, env))
        # planning takes no lock: every target may be read alongside the others
        key = (target.engine, target.role_prefix) if execute else (target.name, "")
        by_server.setdefault(server, {}).setdefault(key, []).append(target)
    queues = [list(groups.values()) for groups in by_server.values()]
    ordered: list[list[Target]] = []
    for turn in range(max((len(q) for q in queues), default=0)):
        ordered += [q[turn] for q in queues if turn < len(q)]
    return ordered


def bounded_map(items: Iterable[T], work: Callable[[T], R], jobs: int) -> list[R]:
    """`work(item)` for every item, at most `jobs` at once, the results in the items' order.
    Each call is expected to hold at most one connection (see the module's docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = list(items)
    if jobs <= 1 or len(todo) <= 1:
        return [work(item) for item in todo]
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(todo)), thread_name_prefix="jitgrant-job")
    try:
        return list(pool.map(work, todo))
    except BaseException:
        # Ctrl-C: the targets under way finish (their transactions end cleanly), the
        # others are not started.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


class ProgressLine:
    """`target 37/200 done (orders-eu)` rewritten in place on a terminal's stderr, for runs over
    many targets; nothing when stderr is not a terminal (a CI log, a pipe) or the run is small.
    Safe to call from the workers."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.total = total
        self.done = 0
        self.shown = total >= PROGRESS_FROM and _is_terminal(self.stream)
        self._lock = threading.Lock()

    def finished(self, name: str) -> None:
        with self._lock:
            self.done += 1
            if self.shown:
                self.stream.write(f"\r\033[Ktarget {self.done}/{self.total} done ({name})")
                self.stream.flush()

    def clear(self) -> None:
        """Leave the terminal as it was, before the run's own output."""
        if self.shown and self.done:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def check_jobs(jobs: int) -> int:
    """--jobs is at least 1 (click's IntRange says so already; this is for the library)."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    return jobs

