"""`jitgrant request` and `extend` end to end on servers that check passwords: request ->
merge -> apply -> log in with the password from the local store, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from reconciler import secretstore
from reconciler.apply import Run
from tests.cli.conftest import jitgrant
from tests.conftest import MysqlServer
from tests.helpers import AccessRepo, git
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld


@pytest.fixture(autouse=True)
def requester(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """alice's machine: her git identity and a secret store of the test's own."""
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "alice@example.com")


@pytest.fixture
def my(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    w = MyWorld(mysql, tmp_path / "myrepo")
    yield w
    w.cleanup()


def merged(repo: AccessRepo, command: str, *args: str) -> str:
    """Run a requester command, merge its branch into main as the approver would, and return
    the grant file it added or removed."""
    result = jitgrant(command, *args, "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    (branch,) = [b for b in git(repo.root, "for-each-ref", "--format=%(refname:short)",
                                "refs/heads").split() if b != "main"]
    (path,) = git(repo.root, "diff", "--name-only", "main", branch).split()
    git(repo.root, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
    git(repo.root, "branch", "-d", branch)
    return path


def request(repo: AccessRepo, duration: str = "2h") -> str:
    return merged(repo, "request", "db1", "readonly", "--for", duration, "--reason",
                  "INC-9 check the orders")


def applied(world: Any) -> Run:
    run: Run = world.run()
    assert not run.failed, [(t.error, t.results) for t in run.targets] + run.problems
    return run


def password(login: str) -> str:
    found = secretstore.load("db1", login)
    assert found is not None
    return found


def kinds(run: Run) -> list[str]:
    return [a.kind for t in run.targets for a in (t.plan.actions if t.plan else ())]


# -- PostgreSQL 15 and 18 with scram-sha-256 -------------------------------------------------


def test_the_requested_password_logs_in_on_postgres(scram_world: World) -> None:
    w = scram_world
    request(w.repo)
    assert kinds(applied(w)) == ["create"]
    secret = password(w.login())
    with psycopg.connect(w.server.login_dsn(w.login(), secret)) as c:
        assert c.execute("SELECT current_user").fetchone() == (w.login(),)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(w.server.login_dsn(w.login(), "not-" + secret))


def test_extend_keeps_the_session_and_moves_valid_until(scram_world: World) -> None:
    w = scram_world
    path = request(w.repo, "1h")
    applied(w)
    secret = password(w.login())
    with psycopg.connect(w.server.login_dsn(w.login(), secret), autocommit=True) as session:
        assert session.execute("SELECT 1").fetchone() == (1,)
        before = w.role(w.login())
        assert before is not None
        merged(w.repo, "extend", path, "--for", "2h")
        assert kinds(applied(w)) == ["update"]
        assert session.execute("SELECT 2").fetchone() == (2,)  # the session lives on
    after = w.role(w.login())
    assert after is not None
    assert after["rolvaliduntil"] == before["rolvaliduntil"] + timedelta(hours=2)
    assert password(w.login()) == secret
    with psycopg.connect(w.server.login_dsn(w.login(), secret)) as c:  # same password
        assert c.execute("SELECT current_user").fetchone() == (w.login(),)


def test_a_request_for_someone_else_logs_in_only_with_the_grantees_own_password(
        scram_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11, finding 11: alice asks for bob; the login has no password until bob gives it
    his, in a grant of his own; alice never holds it."""
    w = scram_world
    w.write_policy(requesters_for_others=["@alice-gh"])
    path = merged(w.repo, "request", "db1", "readonly", "--as", "bob", "--for", "2h",
                  "--reason", "INC-9 bob is on call")
    assert kinds(applied(w)) == ["create"]
    assert secretstore.load("db1", w.login("bob")) is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.server.login_dsn(w.login("bob"), None), connect_timeout=5)
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "bob@example.com")
    merged(w.repo, "password", path)
    assert kinds(applied(w)) == ["update"]
    secret = password(w.login("bob"))
    with psycopg.connect(w.server.login_dsn(w.login("bob"), secret)) as c:
        assert c.execute("SELECT current_user").fetchone() == (w.login("bob"),)


def test_revoke_takes_the_login_away_on_postgres(scram_world: World) -> None:
    w = scram_world
    path = request(w.repo)
    applied(w)
    merged(w.repo, "revoke", path)
    assert kinds(applied(w)) == ["revoke"]
    assert w.role(w.login()) is None


# -- MariaDB ---------------------------------------------------------------------------------


@pytest.mark.mysql
def test_the_requested_password_logs_in_on_mariadb(my: MyWorld) -> None:
    request(my.repo)
    assert kinds(applied(my)) == ["create"]
    secret = password(my.login())
    with my.server.login(my.login(), secret, "test") as c, c.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (my.login() + "@%",)
    with pytest.raises(pymysql.OperationalError):
        my.server.login(my.login(), "not-" + secret)


@pytest.mark.mysql
def test_extend_keeps_the_session_on_mariadb(my: MyWorld) -> None:
    path = request(my.repo, "1h")
    applied(my)
    secret = password(my.login())
    with my.server.login(my.login(), secret, "test") as session, session.cursor() as cur:
        merged(my.repo, "extend", path, "--for", "2h")
        assert "revoke" not in kinds(applied(my))
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    my.server.login(my.login(), secret, "test").close()
