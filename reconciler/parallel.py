"""Two halves of a CPU-bound step at once: one in a forked child, one here.

Reading 10,000 grant files is pure Python work (YAML, schema, policy rules) and Python runs it
on one core. On Linux with two or more usable cores, `both` forks: the child runs one function
and sends its result back pickled through a pipe while the parent runs the other. Forking is
copy-on-write, so the child starts with everything already read (no pickling of inputs).

Anything unusual falls back to running both here, one after the other: another platform, one
core, `JITGRANT_PARALLEL=0`, a child that dies or cannot pickle. A child's exception is raised
here as it was raised there.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from typing import Any, TypeVar

A = TypeVar("A")
B = TypeVar("B")


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def enabled() -> bool:
    if os.environ.get("JITGRANT_PARALLEL", "1") == "0" or sys.platform != "linux":
        return False
    return cores() >= 2


def both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """(first(), second()), with first() in a forked child when that can help."""
    if not enabled():
        return first(), second()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller's code
        os.close(read_end)
        _child(first, write_end)
    os.close(write_end)
    try:
        mine = second()
    finally:
        payload = _read_all(read_end)
        os.waitpid(pid, 0)
    return _result(payload, first), mine


def _child(func: Callable[[], Any], fd: int) -> None:
    code = 0
    try:
        try:
            payload = pickle.dumps(("ok", func()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - carried to the parent
            payload = pickle.dumps(("raised", exc), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(payload)
    except BaseException:  # noqa: BLE001 - the parent then runs func itself
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


def _result(payload: bytes, fallback: Callable[[], A]) -> A:
    try:
        status, value = pickle.loads(payload)  # noqa: S301 - our own child's bytes
    except Exception:  # noqa: BLE001 - the child died or sent nothing: do it here
        return fallback()
    if status == "raised":
        raise value
    return value  # type: ignore[no-any-return]
