"""A webhook that answers with something that is not HTTP (a hostile endpoint, a proxy in the
way): posting is one warning naming the host, never an internal error (exit 3) and never the
URL's path. The endpoint is a local socket that sends raw bytes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler import notify
from tests.cli.test_queue import STALE, Remote, queue, queue_policy
from tests.ghstandin import GhStandIn
from tests.helpers import grant, stamp, utc

SECRET = "/services/T0/B0/hostileSECRETpath"
ANSWERS = [b"HELLO\r\n\r\n",  # no status line
           b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",  # cut short
           b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",  # a header line too long
           b"HTTP/1.1 200 OK\r\n" + b"".join(b"X%d: a\r\n" % i for i in range(200)) + b"\r\n"]


@contextmanager
def raw_server(answer: bytes) -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}{SECRET}"
    finally:
        server.close()


@pytest.mark.parametrize("answer", ANSWERS)
def test_an_answer_that_is_no_http_is_one_warning(answer: bytes) -> None:
    with raw_server(answer) as url:
        problem = notify.post(url, "x")
    assert problem is not None and "127.0.0.1" in problem and SECRET not in problem


def test_queue_warns_and_keeps_its_exit_code(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    remote = Remote(tmp_path, queue_policy())
    gh = GhStandIn(tmp_path, monkeypatch)
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)))
    with raw_server(ANSWERS[0]) as url:
        result = queue(remote, "--act", "--notify", url)
    assert result.exit_code == 0, result.output
    assert "127.0.0.1" in result.stderr and SECRET not in result.output + result.stderr
