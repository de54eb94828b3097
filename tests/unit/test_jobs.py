"""jobs.py without a server: which server a DSN names, the order and grouping of the work,
--environment, and the progress line."""

from __future__ import annotations

import io
import threading

import pytest

from reconciler.errors import UserError
from reconciler.jobs import ProgressLine, bounded_map, server_of, tasks
from reconciler.model import Target
from reconciler.targets import select_in


def target(name: str, dsn_env: str = "A", engine: str = "postgres", prefix: str = "jit_",
           environment: str | None = "production") -> Target:
    return Target(name=name, engine=engine, dsn_env=dsn_env, role_prefix=prefix,
                  environment=environment)


@pytest.mark.parametrize(("engine", "dsn", "server"), [
    ("postgres", "postgresql://u:pw@db1.example:6432/app", "postgres:db1.example:6432"),
    ("postgres", "host=db1.example dbname=other user=x", "postgres:db1.example:5432"),
    ("postgres", "postgresql://u@db1.example/app?port=6432", "postgres:db1.example:6432"),
    ("mysql", "mysql://u:pw@db2.example/test", "mysql:db2.example:3306"),
    ("mysql", "mysql://u@localhost/test?unix_socket=/run/m.sock", "mysql:socket /run/m.sock"),
])
def test_the_server_is_read_as_the_driver_reads_the_dsn(engine: str, dsn: str,
                                                          server: str) -> None:
    assert server_of(target("t", engine=engine), dsn) == server


def test_a_dsn_that_cannot_be_read_is_a_server_of_its_own() -> None:
    assert server_of(target("a"), "host='unclosed") != server_of(target("b"), "host='unclosed")
    assert server_of(target("a", engine="mysql"), "http://x") == "unread:a"


def test_servers_take_turns_and_a_shared_lock_is_one_task() -> None:
    env = {"A": "postgresql://h1/x", "B": "postgresql://h2/x", "C": "postgresql://h1/other"}
    a1, a2 = target("a1", "A", prefix="p1_"), target("a2", "A", prefix="p2_")
    same_lock = target("a3", "C", prefix="p1_")  # h1 again, and p1_'s lock
    b1 = target("b1", "B", prefix="p1_")  # p1_ too, but on another server: its own lock
    order = [[t.name for t in task]
             for task in tasks([a1, a2, same_lock, b1], env, execute=True)]
    assert order == [["a1", "a3"], ["b1"], ["a2"]]
    # planning takes no lock: every target is a task of its own
    assert [[t.name for t in task] for task in tasks([a1, a2, same_lock, b1], env, False)] \
        == [["a1"], ["b1"], ["a2"], ["a3"]]


def test_bounded_map_keeps_the_order_and_the_bound() -> None:
    lock, live, peak = threading.Lock(), [0], [0]
    release = threading.Barrier(3, timeout=60)  # a guard against a hang, not a timing

    def work(item: int) -> int:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        if item < 3:
            release.wait()  # the first three run together: the bound lets three at once
        with lock:
            live[0] -= 1
        return item * 2

    assert bounded_map(range(20), work, 3) == [i * 2 for i in range(20)]
    assert peak[0] == 3


POLICY_TARGETS = {t.name: t for t in (
    target("orders-eu"), target("orders-us"), target("orders-stg", environment="staging"),
    target("lab", environment=None))}


def test_environment_selects_and_combines_with_target() -> None:
    assert select_in(POLICY_TARGETS, (), ("staging",)) == ["orders-stg"]
    assert select_in(POLICY_TARGETS, (), ("prod*", "staging")) == \
        ["orders-eu", "orders-stg", "orders-us"]
    assert select_in(POLICY_TARGETS, ("orders-*",), ("production",)) == \
        ["orders-eu", "orders-us"]
    assert select_in(POLICY_TARGETS, (), ()) == sorted(POLICY_TARGETS)


def test_an_environment_no_target_is_in_is_refused() -> None:
    with pytest.raises(UserError, match="no target is in environment 'prod' "
                                        r"\(environments: production, staging\)"):
        select_in(POLICY_TARGETS, (), ("prod",))
    with pytest.raises(UserError, match="no target is both in lab and in the environments"):
        select_in(POLICY_TARGETS, ("lab",), ("staging",))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_only_on_a_terminal_and_for_many_targets() -> None:
    tty, pipe, small = Terminal(), io.StringIO(), Terminal()
    for stream, total in ((tty, 200), (pipe, 200), (small, 3)):
        line = ProgressLine(total, stream)
        line.finished("orders-eu")
        line.clear()
    assert "target 1/200 done (orders-eu)" in tty.getvalue()
    assert tty.getvalue().endswith("\r\033[K")
    assert pipe.getvalue() == small.getvalue() == ""
