"""The MySQL/MariaDB server a benchmark runs on, the namespace it creates and always removes,
and the plain `mariadb` client that gives the floor."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pymysql

from reconciler.engines.mysql import account, identifier, parse_dsn

from .steps import BenchError

DSN_ENV = "JITGRANT_BENCH_MYSQL_DSN"
MACHINE_DSN = "mysql://root@127.0.0.1:3306/test"
CLIENTS = ("mariadb", "mysql")
BATCH = 500  # accounts per DROP statement when cleaning up
_PREFIX = "LEFT(User, CHAR_LENGTH(%(prefix)s)) = %(prefix)s"


def resolve(dsn: str | None) -> str:
    return dsn or os.environ.get(DSN_ENV) or MACHINE_DSN


def connect(dsn: str) -> pymysql.connections.Connection[Any]:
    try:
        return pymysql.connect(**parse_dsn(dsn), autocommit=True, charset="utf8mb4")
    except pymysql.MySQLError as exc:
        raise BenchError(f"cannot connect to {dsn}: {exc}") from None


def query(dsn: str, text: str, params: object = None) -> list[tuple[Any, ...]]:
    with closing(connect(dsn)) as c, c.cursor() as cur:
        cur.execute(text, params)
        return list(cur.fetchall())


def describe(dsn: str) -> str:
    """`MariaDB 10.11.x (host:port)` for the report."""
    [(version,)] = query(dsn, "SELECT VERSION()")
    args = parse_dsn(dsn)
    kind = "MariaDB" if "mariadb" in str(version).lower() else "MySQL"
    where = args.get("unix_socket") or f"{args['host']}:{args['port']}"
    return f"{kind} {version} ({where})"


# -- the plain client ------------------------------------------------------------------------


def client_binary() -> str:
    for name in CLIENTS:
        found = shutil.which(name)
        if found:
            return found
    raise BenchError("client floor: neither mariadb nor mysql is on PATH")


def client_version() -> str:
    """`mariadb client 10.11.x-MariaDB` for the machine line."""
    try:
        binary = client_binary()
    except BenchError:
        return "no mariadb client"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
    word = next((w for w in ("Distrib", "Ver") if w in out[:-1]), None)
    version = out[out.index(word) + 1].rstrip(",") if word else "?"
    return f"{Path(binary).name} client {version}"


def write_statements(path: Path, statements: Sequence[str]) -> None:
    """One statement a line, as the client reads them; 0600, as the file holds verifiers."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(s + ";\n" for s in statements))


def client(dsn: str, path: Path) -> None:
    """`mariadb --batch < path`: one connection, one statement after another, stop at the
    first error. No option files are read (like `psql -X`); the password goes in MYSQL_PWD,
    not on the command line."""
    args = parse_dsn(dsn)
    cmd = [client_binary(), "--no-defaults", "--batch", "--user", args["user"]]
    if "unix_socket" in args:
        cmd += ["--protocol", "socket", "--socket", args["unix_socket"]]
    else:
        cmd += ["--protocol", "tcp", "--host", args["host"], "--port", str(args["port"])]
    cmd += [args["database"]] if "database" in args else []
    env = {**os.environ, **({"MYSQL_PWD": args["password"]} if args["password"] else {})}
    with path.open("rb") as stdin:
        proc = subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        raise BenchError(f"{Path(cmd[0]).name}: exit {proc.returncode}: {proc.stderr[-500:]}")


# -- the namespace ---------------------------------------------------------------------------


class Namespace:
    """A random account prefix for one run plus one MariaDB role outside it; `cleanup` drops
    every account and role either of them names, whatever state a failed run left behind."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        while True:
            tag = secrets.token_hex(2)
            self.prefix = f"b{tag}_"
            self.group = f"b{tag}grp"  # outside the prefix: jitgrant must not own it
            if not self._accounts(include_group=True):
                break
        self._execute([f"CREATE ROLE {identifier(self.group)}"])

    def logins(self) -> list[str]:
        return [user for user, _ in self._accounts(include_group=False)]

    def drop_logins(self) -> None:
        self._drop(self._accounts(include_group=False))

    def cleanup(self) -> None:
        self._drop(self._accounts(include_group=True))

    def _accounts(self, include_group: bool) -> list[tuple[str, str]]:
        where = _PREFIX + (" OR User = %(group)s" if include_group else "")
        rows = query(self.dsn, f"SELECT User, Host FROM mysql.user WHERE {where} ORDER BY 1",
                     {"prefix": self.prefix, "group": self.group})
        return [(str(user), str(host)) for user, host in rows]

    def _drop(self, accounts: list[tuple[str, str]]) -> None:
        # MariaDB roles have host ''; MySQL 8 roles are accounts at '%' and go with DROP USER.
        roles = [identifier(user) for user, host in accounts if host == ""]
        users = [account(user, host) for user, host in accounts if host != ""]
        statements = [f"DROP USER IF EXISTS {', '.join(users[i:i + BATCH])}"
                      for i in range(0, len(users), BATCH)]
        if roles:
            statements.append(f"DROP ROLE IF EXISTS {', '.join(roles)}")
        self._execute(statements)

    def _execute(self, statements: list[str]) -> None:
        with closing(connect(self.dsn)) as c, c.cursor() as cur:
            for text in statements:
                cur.execute(text)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
