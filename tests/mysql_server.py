"""A throwaway MariaDB/MySQL server in a temporary folder, for machines without one running."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

SERVER_BINARIES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/bin/mariadbd")
INSTALL_BINARIES = ("/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")


def find(candidates: tuple[str, ...], name: str) -> str | None:
    found = next((c for c in candidates if Path(c).exists()), None)
    return found or shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayMariadb:
    def __init__(self, *options: str) -> None:
        self.options = options  # more mariadbd options (TLS files, say)
        self.server = find(SERVER_BINARIES, "mariadbd")
        self.install = find(INSTALL_BINARIES, "mariadb-install-db")
        self.root = Path(tempfile.mkdtemp(prefix="jitgrant-mysql-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def available(self) -> bool:
        return bool(self.server and self.install)

    def start(self) -> str:
        assert self.server and self.install
        user = self._user()
        data = self.root / "data"
        subprocess.run([self.install, "--no-defaults", f"--datadir={data}", f"--user={user}",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={data}", f"--user={user}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.root / 'mysqld.sock'}", "--skip-name-resolve",
             "--event-scheduler=ON", f"--log-error={self.root / 'error.log'}", *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        # The tests work in a database `test`, as a packaged server has it; the install step
        # leaves it out (--skip-test-db) because its default grants open it to every user.
        with pymysql.connect(host="127.0.0.1", port=self.port, user="root") as conn, \
                conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS test")
        return f"mysql://root@127.0.0.1:{self.port}/test"

    def _user(self) -> str:
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        try:
            pwd.getpwnam("mysql")
        except KeyError:
            return "root"
        shutil.chown(self.root, "mysql", "mysql")
        return "mysql"

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                connect_timeout=1).close()
                return
            except pymysql.MySQLError:
                time.sleep(0.2)
        log = self.root / "error.log"
        raise RuntimeError("mariadbd did not start: " + (log.read_text()[-2000:]
                                                         if log.exists() else ""))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)
