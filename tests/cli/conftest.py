"""Fixtures for the command-line tests: an access repository, the command, and a namespace of
our own on the machine's PostgreSQL (cleaned up whatever happens)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from reconciler.cli import main
from tests.helpers import AccessRepo, git, grant, policy

# The console script installed beside this interpreter (the venv's bin/).
JITGRANT_BIN = str(Path(sys.executable).with_name("jitgrant"))
PG_DSN = os.environ.get("JITGRANT_TEST_PG_DSN") or "postgresql://root@127.0.0.1:5432/postgres"


def jitgrant(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run one command in-process; stdout and stderr stay apart."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def head(repo: AccessRepo) -> str:
    return git(repo.root, "rev-parse", "HEAD")


class Namespace:
    """A role prefix and a group role of our own on a real PostgreSQL server."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.prefix = f"t{tag}_"
        self.group = f"g{tag}_app"
        self.dsn_env = f"JG_CLI_DSN_{tag.upper()}"
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(self.group)))

    @property
    def env(self) -> dict[str, str]:
        return {self.dsn_env: PG_DSN}

    def policy(self, **extra: Any) -> dict[str, Any]:
        return policy(dsn_env=self.dsn_env, prefix=self.prefix, groups=(self.group,), **extra)

    def login(self, grantee: str = "alice", access: str = "readonly") -> str:
        return f"{self.prefix}{grantee}_{access}"

    def role(self, name: str) -> dict[str, Any] | None:
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            cur = c.execute(
                "SELECT rolcanlogin, rolvaliduntil, rolpassword,"
                " array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g"
                "       ON g.oid = m.roleid WHERE m.member = a.oid) AS member_of"
                " FROM pg_authid a WHERE rolname = %s", [name])
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d.name for d in cur.description or ()], row, strict=True))

    def cleanup(self) -> None:
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            names = [r[0] for r in c.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) OR rolname = %s",
                [self.prefix, self.group])]
            for name in names:
                c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE usename = %s", [name])
                c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            for name in sorted(names, key=lambda n: n == self.group):
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    """An access repository with the helpers' policy committed on main."""
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", policy())
    r.commit("policy")
    return r


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL at {PG_DSN}: {exc}")
    ns = Namespace()
    try:
        yield ns
    finally:
        ns.cleanup()


@pytest.fixture
def pg_repo(tmp_path: Path, namespace: Namespace) -> AccessRepo:
    """An access repository whose one target is our namespace on the real server."""
    r = AccessRepo(tmp_path / "pgrepo")
    r.write("policies/main.yaml", namespace.policy())
    r.commit("policy")
    return r


def bare_origin(tmp_path: Path, files: dict[str, Any], message: str) -> Path:
    """A bare origin whose main holds `files` (path -> YAML document) in one commit."""
    seed = AccessRepo(tmp_path / "seed")
    for rel, doc in files.items():
        seed.write(rel, doc)
    seed.commit(message)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(seed.root, "push", "-q", str(bare), "main")
    return bare


def origin_with_a_grant(tmp_path: Path, namespace: Namespace) -> Path:
    """A bare origin whose main holds the namespace's policy and alice's merged grant."""
    return bare_origin(tmp_path, {"policies/main.yaml": namespace.policy(),
                                  "grants/db1/alice.yaml": grant()},
                       "Merge pull request #7 from alice/grant")
