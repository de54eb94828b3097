"""Scale tests: access repositories of tens of thousands of grants, made in seconds, and a count
of the client-server exchanges the PostgreSQL engine makes. Nothing here measures time."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bench.repo import commit_files
from reconciler.timeutil import iso
from tests.conftest import PgServer

GROUP_SQL = "CREATE ROLE {} NOLOGIN"


@dataclass
class Shape:
    """An access repository: `targets` PostgreSQL targets on one server (each its own prefix
    and DSN variable), `people` people, and grants given by `spread(person) -> [(target,
    access)]`."""

    tag: str
    targets: int
    people: int
    levels: tuple[str, ...]
    group: str = field(init=False)

    def __post_init__(self) -> None:
        self.group = f"s{self.tag}grp"  # outside every prefix

    def target(self, index: int) -> str:
        return f"t{index:02d}"

    def prefix(self, index: int) -> str:
        return f"s{self.tag}{index:02d}_"

    def dsn_env(self, index: int) -> str:
        return f"JG_SCALE_{self.tag.upper()}_{index:02d}"

    def person(self, index: int) -> str:
        return f"u{index:05d}"

    def login(self, target: int, person: int, access: str) -> str:
        return f"{self.prefix(target)}{self.person(person)}_{access}"


def policy_yaml(shape: Shape) -> str:
    lines = ["targets:"]
    for t in range(shape.targets):
        lines += [f"  {shape.target(t)}:", "    engine: postgres",
                  f"    dsn_env: {shape.dsn_env(t)}", "    environment: production",
                  f"    role_prefix: {shape.prefix(t)}"]
    lines.append("access:")
    for level in shape.levels:
        lines += [f"  {level}:", f"    roles: [{shape.group}]", "    max_duration: 8h",
                  "    connection_limit: 3"]
    lines.append("people:")
    for p in range(shape.people):
        name = shape.person(p)
        lines += [f"  {name}:", f"    email: {name}@example.com", "    groups: [backend]"]
    return "\n".join(lines) + "\n"


def grant_yaml(shape: Shape, target: int, person: int, access: str, expires: datetime) -> str:
    return (f"grantee: {shape.person(person)}\ntarget: {shape.target(target)}\n"
            f"access: {access}\nexpires: {iso(expires)}\nreason: SCALE-{person} load test\n")


Spread = Callable[[int], list[tuple[int, str]]]


def build(root: Path, shape: Shape, spread: Spread, expires: datetime) -> set[str]:
    """Commit the repository in one go; the logins it grants."""
    files = [("policies/main.yaml", policy_yaml(shape))]
    logins = set()
    for p in range(shape.people):
        for t, access in spread(p):
            rel = f"grants/{shape.target(t)}/{shape.person(p)}-{access}.yaml"
            files.append((rel, grant_yaml(shape, t, p, access, expires)))
            logins.add(shape.login(t, p, access))
    commit_files(root, files, f"{len(files) - 1} grants")
    return logins


def new_shape(targets: int, people: int, levels: tuple[str, ...] = ("readonly",)) -> Shape:
    return Shape(secrets.token_hex(2), targets, people, levels)


class Roles:
    """The group role and every role under the shapes' prefixes: made here, always dropped."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.shapes: list[Shape] = []

    def add(self, shape: Shape) -> None:
        with self.server.conn() as c:
            c.execute(sql.SQL(GROUP_SQL).format(sql.Identifier(shape.group)))
        self.shapes.append(shape)

    def env(self, shape: Shape) -> dict[str, str]:
        return {shape.dsn_env(t): self.server.admin_dsn for t in range(shape.targets)}

    def logins(self, shape: Shape) -> dict[str, tuple[Any, ...]]:
        """Each login under the shape's prefixes: (can login, connection limit, valid until,
        member of the group, comment), in one query."""
        with self.server.conn() as c:
            rows = c.execute(
                "SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolvaliduntil,"
                " pg_has_role(r.oid, %(group)s, 'MEMBER'),"
                " shobj_description(r.oid, 'pg_authid') FROM pg_roles r"
                " WHERE starts_with(r.rolname, %(stem)s)",
                {"group": shape.group, "stem": f"s{shape.tag}"}).fetchall()
        return {row[0]: tuple(row[1:]) for row in rows}

    def drop_all(self) -> None:
        with self.server.conn() as c:
            for shape in self.shapes:
                names = [r[0] for r in c.execute(
                    "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
                    [f"s{shape.tag}"]).fetchall()]
                logins = [n for n in names if n != shape.group]
                for start in range(0, len(logins), 1000):
                    chunk = sql.SQL(", ").join(map(sql.Identifier, logins[start:start + 1000]))
                    c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(chunk))
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(shape.group)))


@pytest.fixture
def roles(pg15: PgServer) -> Iterator[Roles]:
    made = Roles(pg15)
    try:
        yield made
    finally:
        made.drop_all()


class RoundTrips:
    """Counts what psycopg waits on the server for: every `Connection.wait` outside a
    pipeline is one exchange (a query, BEGIN, COMMIT), a whole pipeline block is one, and
    every new connection is one more."""

    def __init__(self) -> None:
        self.exchanges = 0
        self.connections = 0
        self._piped: set[int] = set()
        self._lock = threading.Lock()  # apply reads and reconciles targets in parallel

    @property
    def total(self) -> int:
        return self.exchanges + self.connections

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        wait, pipeline, connect = (psycopg.Connection.wait, psycopg.Connection.pipeline,
                                   psycopg.connect)
        counter = self

        def counting_wait(conn: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
            with counter._lock:
                if id(conn) not in counter._piped:
                    counter.exchanges += 1
            return wait(conn, gen, *args, **kwargs)

        @contextmanager
        def counting_pipeline(conn: Any) -> Iterator[Any]:
            with counter._lock:
                counter.exchanges += 1
                counter._piped.add(id(conn))
            try:
                with pipeline(conn) as p:
                    yield p
            finally:
                with counter._lock:
                    counter._piped.discard(id(conn))

        def counting_connect(*args: Any, **kwargs: Any) -> Any:
            with counter._lock:
                counter.connections += 1
            return connect(*args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "wait", counting_wait)
        monkeypatch.setattr(psycopg.Connection, "pipeline", counting_pipeline)
        monkeypatch.setattr(psycopg, "connect", counting_connect)  # what the engine calls

    @contextmanager
    def counting(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
        """Count only inside the block (the test's own checks stay out of it)."""
        self.exchanges = self.connections = 0
        with monkeypatch.context() as patch:
            self.install(patch)
            yield self
