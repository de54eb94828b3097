"""`jitgrant connect` as a requester runs it: the real command, a real client (psql, mariadb)
and a server that checks the password. The password comes from the local store only and
reaches the client through its environment, never its command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import secretstore
from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.engines.mysql import parse_dsn
from tests.conftest import MysqlServer
from tests.helpers import git
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld

JITGRANT_BIN = str(Path(sys.executable).with_name("jitgrant"))
# Client settings a developer's shell might hold: the test must not lean on any of them.
CLIENT_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE",
               "PGPASSFILE", "PGHOSTADDR", "PGSERVICEFILE", "MYSQL_PWD", "MYSQL_HOST",
               "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT")
SHOW_CMDLINE = 'tr "\\0" " " < /proc/$PPID/cmdline && echo'
SHOW_ENV_NAMES = "tr '\\0' '\\n' < /proc/$PPID/environ | cut -d= -f1 | grep -x -e PGPASSWORD " \
                 "-e MYSQL_PWD"


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(folder))
    return folder


def run(repo: Path, *args: str, config: Path,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, as a requester runs it: no admin DSN, no client settings."""
    base = {k: v for k, v in os.environ.items() if k not in CLIENT_VARS and
            not k.startswith("JG_")}
    base.update(JITGRANT_CONFIG_DIR=str(config), **(env or {}))
    command, *rest = args
    return subprocess.run([JITGRANT_BIN, command, "--repo", str(repo), *rest],
                          capture_output=True, text=True, env=base, timeout=60)


def pg_world_for_connect(world: World) -> str:
    """Point the target's connect block at the test server; grant alice; apply; keep her
    password in the local store. Returns the password."""
    params = world.server.params
    world.write_policy(connect={"host": params.get("host", "127.0.0.1"),
                                "port": int(params.get("port", 5432)), "dbname": "postgres"})
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    result = world.run()
    assert not result.failed, (result.targets[0].error, result.problems)
    secretstore.save("db1", world.login(), password)
    return password


def test_psql_runs_a_query_as_the_login(scram_world: World, config_dir: Path) -> None:
    password = pg_world_for_connect(scram_world)
    proc = run(scram_world.repo.root, "connect", "db1", "--as", "alice", "--", "-X", "-A",
               "-t", "-c", "select current_user", "-c", f"\\! {SHOW_CMDLINE}",
               "-c", f"\\! {SHOW_ENV_NAMES}", config=config_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == scram_world.login()
    assert "psql -X -A -t -c select current_user -c" in lines[1]  # the child's argv
    assert lines[2:] == ["PGPASSWORD"]  # ... and its environment
    assert password not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("jitgrant: connecting to db1 (") and \
        f"as {scram_world.login()}; the grant ends at " in proc.stderr


def test_psql_is_refused_a_wrong_password(scram_world: World, config_dir: Path) -> None:
    password = pg_world_for_connect(scram_world)
    secretstore.save("db1", scram_world.login(), "not-" + password)
    proc = run(scram_world.repo.root, "connect", "db1", "readonly", "--as", "alice", "--",
               "-X", "-c", "select 1", config=config_dir)
    assert proc.returncode == 2  # psql's own exit code: connect returns the client's
    assert "password authentication failed" in proc.stderr
    assert password not in proc.stdout + proc.stderr


@pytest.mark.prints_password  # on purpose: the secret scan skips its outputs
def test_print_env_is_what_psql_needs(scram_world: World, config_dir: Path) -> None:
    password = pg_world_for_connect(scram_world)
    proc = run(scram_world.repo.root, "connect", "db1", "--as", "alice", "--print-env",
               config=config_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"export PGPASSWORD={password}" in proc.stdout  # the one output that holds it
    assert "warning: the output holds the password" in proc.stderr
    script = proc.stdout + "\npsql -X -A -t -c 'select current_user'\n"
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARS}
    shell = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                           timeout=30)
    assert shell.stdout.strip() == scram_world.login(), shell.stderr


def test_the_environment_cannot_send_psql_elsewhere(scram_world: World, config_dir: Path,
                                                    tmp_path: Path) -> None:
    """PGHOSTADDR overrides PGHOST's address and a service overrides them all: a shell that
    holds them still reaches the server the policy names."""
    pg_world_for_connect(scram_world)
    services = tmp_path / "pg_service.conf"
    services.write_text("[elsewhere]\nhost=127.0.0.2\nport=1\n")
    redirects = {"PGHOSTADDR": "127.0.0.2", "PGSERVICE": "elsewhere",
                 "PGSERVICEFILE": str(services)}
    show = "tr '\\0' '\\n' < /proc/$PPID/environ | cut -d= -f1 | grep -x " + \
        " ".join(f"-e {name}" for name in redirects) + " || echo none"
    proc = run(scram_world.repo.root, "connect", "db1", "--as", "alice", "--", "-X", "-A",
               "-t", "-c", "select current_user, inet_server_addr()", "-c", f"\\! {show}",
               config=config_dir, env=redirects)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{scram_world.login()}|127.0.0.1", "none"]


@pytest.fixture
def my_world(mysql: MysqlServer, tmp_path: Path) -> Iterator[MyWorld]:
    args = parse_dsn(mysql.admin_dsn)
    w = MyWorld(mysql, tmp_path / "repo",
                connect={"host": args["host"], "port": int(args["port"]), "dbname": "test"})
    yield w
    w.cleanup()


@pytest.mark.mysql
def test_mariadb_runs_a_query_as_the_login(my_world: MyWorld, config_dir: Path) -> None:
    my_world.add_grant()
    result = my_world.run()
    assert not result.failed, (result.targets[0].error, result.problems)
    password = my_world.passwords["alice"]
    secretstore.save("db1", my_world.login(), password)
    proc = run(my_world.repo.root, "connect", "db1", "--as", "alice", "--", "--batch",
               "--skip-column-names", "-e",
               f"select current_user(); \\! {SHOW_CMDLINE}\n\\! {SHOW_ENV_NAMES}",
               config=config_dir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"{my_world.login()}@%" in out.splitlines()
    cmdline = next(line for line in out.splitlines() if line.startswith("mariadb "))
    assert f"--user={my_world.login()}" in cmdline and "--database=test" in cmdline
    assert "MYSQL_PWD" in out.splitlines()
    assert password not in out + proc.stderr


@pytest.mark.mysql
def test_the_environment_cannot_send_mariadb_elsewhere(my_world: MyWorld,
                                                       config_dir: Path) -> None:
    my_world.add_grant()
    assert not my_world.run().failed
    secretstore.save("db1", my_world.login(), my_world.passwords["alice"])
    redirects = {"MYSQL_HOST": "127.0.0.2", "MYSQL_TCP_PORT": "1",
                 "MYSQL_UNIX_PORT": "/nonexistent/mysqld.sock"}
    show = "tr '\\0' '\\n' < /proc/$PPID/environ | cut -d= -f1 | grep -x " + \
        " ".join(f"-e {name}" for name in redirects) + " || echo none"
    proc = run(my_world.repo.root, "connect", "db1", "--as", "alice", "--", "--batch",
               "--skip-column-names", "-e", f"select current_user(); \\! {show}",
               config=config_dir, env=redirects)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == sorted([f"{my_world.login()}@%", "none"])


@pytest.mark.mysql
def test_mysql_client_choice_and_a_missing_secret(my_world: MyWorld, config_dir: Path) -> None:
    my_world.add_grant()
    my_world.run()
    proc = run(my_world.repo.root, "connect", "db1", "--as", "alice", config=config_dir)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"jitgrant: error: no password for {my_world.login()} on "
                                  "this machine")
    proc = run(my_world.repo.root, "connect", "db1", "--as", "alice", "--client", "psql",
               config=config_dir)
    assert "--client psql is for postgres targets; this one is mysql" in proc.stderr


# -- end to end: request -> merge -> apply -> connect, the password never leaving the machine --


def request_merge_apply(repo: Path, config: Path, env: dict[str, str]) -> str:
    """As alice: request, merge her branch into main (the approval), apply as the operator.
    Returns the branch; the password exists only in alice's local store."""
    alice = {"GIT_AUTHOR_EMAIL": "alice@example.com"}
    asked = run(repo, "request", "db1", "readonly", "--for", "2h", "--reason",
                "INC-9 end to end", config=config, env=alice)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    branches = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/access/")
    assert len(branches.splitlines()) == 1, branches
    branch = branches.strip()
    pending = run(repo, "status", "--me", "--format", "json", config=config, env=alice)
    assert [(g["state"], g["branch"]) for g in json.loads(pending.stdout)["grants"]] == [
        ("pending", branch)]
    git(repo, "merge", "-q", "--no-ff", "-m", f"Merge pull request #1 from {branch}", branch)
    applied = run(repo, "apply", "--no-commit", config=config, env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    return branch


def test_request_merge_apply_connect_with_psql(scram_world: World, config_dir: Path) -> None:
    params = scram_world.server.params
    scram_world.write_policy(connect={"host": params.get("host", "127.0.0.1"),
                                      "port": int(params.get("port", 5432)),
                                      "dbname": "postgres"})
    request_merge_apply(scram_world.repo.root, config_dir, scram_world.env)
    stored = secretstore.load("db1", scram_world.login())
    assert stored is not None  # written by request, on this machine only
    assert stored not in git(scram_world.repo.root, "log", "-p", "--all")
    proc = run(scram_world.repo.root, "connect", "db1", "readonly", "--", "-X", "-A", "-t",
               "-c", "select current_user", config=config_dir,
               env={"GIT_AUTHOR_EMAIL": "alice@example.com"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == scram_world.login()
    assert stored not in proc.stdout + proc.stderr


@pytest.mark.mysql
def test_request_merge_apply_connect_with_mariadb(my_world: MyWorld, config_dir: Path) -> None:
    request_merge_apply(my_world.repo.root, config_dir, my_world.env)
    stored = secretstore.load("db1", my_world.login())
    assert stored is not None
    proc = run(my_world.repo.root, "connect", "db1", "--client", "mariadb", "--", "--batch",
               "--skip-column-names", "-e", "select current_user()", config=config_dir,
               env={"GIT_AUTHOR_EMAIL": "alice@example.com"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{my_world.login()}@%"
    assert stored not in proc.stdout + proc.stderr
