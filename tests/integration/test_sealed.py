"""Sealed delivery end to end on servers that check passwords: a scram-authenticated
PostgreSQL and MariaDB. `apply` (the real command, in-process) makes the password, sets its
verifier and commits it sealed to the grantee's SSH key; `jitgrant connect` (the installed
command, a real client) opens it with that key and logs in, and with another key fails.
The password is looked for in every git object and output here, and the suite's secret scan
(tests/secretscan.py) opens every sealed file with the keys the tests made and scans for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.engines.mysql import parse_dsn
from reconciler.sealed import SealedFile, open_sealed, read_identity
from tests.conftest import MysqlServer
from tests.helpers import git, utc
from tests.integration.conftest import World
from tests.integration.test_connect import run
from tests.integration.test_mysql import MyWorld
from tests.sealing_world import sealed_at_head, sealed_grant, sealed_policy, ssh_key


def apply(root: Path, env: dict[str, str]) -> Result:
    result = CliRunner().invoke(main, ["apply", "--repo", str(root)], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def opened(found: dict[str, Any], key: Path) -> str:
    """The password in a sealed file, opened as connect opens it."""
    sealed = SealedFile(found["target"], found["login"], found["grantee"], found["grant"],
                        found["run"], found["verifier"], found["password"])
    return open_sealed(sealed, read_identity(key), key)


class Sealed:
    """A world (PostgreSQL or MariaDB) whose alice has an SSH key, and a stranger's key."""

    def __init__(self, world: World | MyWorld, tmp_path: Path, engine: str,
                 connect: dict[str, Any]) -> None:
        self.world, self.repo = world, world.repo
        self.key, public = ssh_key(tmp_path / "keys", "alice")
        self.stranger, _ = ssh_key(tmp_path / "keys", "mallory")
        self.repo.write("policies/main.yaml", sealed_policy(
            {"alice": [public]}, engine=engine, dsn_env=world.dsn_env, prefix=world.prefix,
            groups=(world.group,), connect=connect))
        self.repo.commit("policy: alice's key")

    def grant(self, name: str = "alice", hours: float = 2) -> None:
        self.repo.write(f"grants/db1/{name}.yaml", sealed_grant(expires=utc(hours=hours)))
        self.repo.commit(f"grant {name}, sealed")

    def apply(self) -> Result:
        return apply(self.repo.root, self.world.env)

    def sealed(self) -> dict[str, Any] | None:
        return sealed_at_head(self.repo, "db1", self.world.login())

    def connect(self, key: Path, *client: str, config: Path) -> Any:
        return run(self.repo.root, "connect", "db1", "--as", "alice", "--identity", str(key),
                   "--", *client, config=config)


def sealed_on_postgres(world: World, tmp_path: Path) -> Sealed:
    params = world.server.params
    return Sealed(world, tmp_path, "postgres",
                  {"host": params.get("host", "127.0.0.1"),
                   "port": int(params.get("port", 5432)), "dbname": "postgres"})


@pytest.fixture
def pg_sealed(scram_world: World, tmp_path: Path) -> Sealed:
    return sealed_on_postgres(scram_world, tmp_path)


@pytest.fixture
def my_sealed(mysql: MysqlServer, tmp_path: Path) -> Any:
    args = parse_dsn(mysql.admin_dsn)
    world = MyWorld(mysql, tmp_path / "repo")
    yield Sealed(world, tmp_path, "mysql",
                 {"host": args["host"], "port": int(args["port"]), "dbname": "test"})
    world.cleanup()


PSQL = ("-X", "-A", "-t", "-c", "select current_user")
MARIADB = ("--batch", "--skip-column-names", "-e", "select current_user()")


def never_leaked(s: Sealed, password: str, *outputs: str) -> None:
    objects = git(s.repo.root, "cat-file", "--batch-all-objects", "--batch-check")
    everything = git(s.repo.root, "log", "-p", "--all") + objects + "".join(outputs)
    for sha in (line.split()[0] for line in objects.splitlines()):
        everything += git(s.repo.root, "cat-file", "-p", sha)
    assert password not in everything
    audit = "".join(p.read_text() for p in (s.repo.root / "audit").rglob("*.json"))
    assert password not in audit


def test_postgres_apply_then_connect_with_the_right_key_only(pg_sealed: Sealed,
                                                             config_dir: Path) -> None:
    pg_sealed.grant()
    applied = pg_sealed.apply()
    found = pg_sealed.sealed()
    assert found is not None and found["grant"] == "grants/db1/alice.yaml"
    assert "password_verifier" not in (pg_sealed.repo.root / "grants/db1/alice.yaml").read_text()
    password = opened(found, pg_sealed.key)
    ok = pg_sealed.connect(pg_sealed.key, *PSQL, config=config_dir)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == pg_sealed.world.login()
    wrong = pg_sealed.connect(pg_sealed.stranger, *PSQL, config=config_dir)
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
    assert wrong.stderr.startswith(f"jitgrant: error: {pg_sealed.stranger} cannot open the "
                                   "sealed password")
    never_leaked(pg_sealed, password, applied.output, ok.stdout + ok.stderr, wrong.stderr)


@pytest.mark.mysql
def test_mariadb_apply_then_connect_with_the_right_key_only(my_sealed: Sealed,
                                                            config_dir: Path) -> None:
    my_sealed.grant()
    applied = my_sealed.apply()
    found = my_sealed.sealed()
    assert found is not None
    password = opened(found, my_sealed.key)
    ok = my_sealed.connect(my_sealed.key, *MARIADB, config=config_dir)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{my_sealed.world.login()}@%"
    wrong = my_sealed.connect(my_sealed.stranger, *MARIADB, config=config_dir)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "cannot open the sealed password" in wrong.stderr
    never_leaked(my_sealed, password, applied.output, ok.stdout + ok.stderr, wrong.stderr)


def test_extension_keeps_the_password_a_new_grant_rotates_it(pg_sealed: Sealed,
                                                              config_dir: Path) -> None:
    extension_and_rotation(pg_sealed, config_dir, PSQL, pg_sealed.world.login())


@pytest.mark.mysql
def test_mariadb_extension_keeps_the_password_a_new_grant_rotates_it(
        my_sealed: Sealed, config_dir: Path) -> None:
    extension_and_rotation(my_sealed, config_dir, MARIADB, f"{my_sealed.world.login()}@%")


def extension_and_rotation(pg_sealed: Sealed, config_dir: Path, client: tuple[str, ...],
                           who: str) -> None:
    pg_sealed.grant(hours=2)
    pg_sealed.apply()
    first = pg_sealed.sealed()
    assert first is not None
    head = git(pg_sealed.repo.root, "rev-parse", "HEAD")
    pg_sealed.apply()  # nothing changed: no rotation, no commit
    assert git(pg_sealed.repo.root, "rev-parse", "HEAD") == head
    pg_sealed.grant(hours=6)  # the same file, a later expiry: an extension
    pg_sealed.apply()
    extended = pg_sealed.sealed()
    assert extended == first
    pg_sealed.grant(name="alice-again", hours=7)  # a new grant file: a new password
    pg_sealed.apply()
    rotated = pg_sealed.sealed()
    assert rotated is not None and rotated["grant"] == "grants/db1/alice-again.yaml"
    assert rotated["verifier"] != first["verifier"]
    ok = pg_sealed.connect(pg_sealed.key, *client, config=config_dir)
    assert ok.returncode == 0 and ok.stdout.strip() == who, ok.stderr


def test_revocation_removes_the_ciphertext_from_the_tip(pg_sealed: Sealed) -> None:
    pg_sealed.grant()
    pg_sealed.apply()
    assert pg_sealed.sealed() is not None
    pg_sealed.repo.remove("grants/db1/alice.yaml")
    pg_sealed.repo.commit("revoke alice")
    pg_sealed.apply()
    assert pg_sealed.world.role(pg_sealed.world.login()) is None
    assert pg_sealed.sealed() is None
    touched = git(pg_sealed.repo.root, "log", "-1", "--name-status", "--format=%s")
    assert "[skip ci]" in touched and f"D\tsealed/db1/{pg_sealed.world.login()}.yaml" in touched


def test_jitgrant_extend_keeps_the_password(pg_sealed: Sealed, config_dir: Path) -> None:
    """`jitgrant extend` writes a new file beside the old one (`extends:` names it): the
    password carries on, and the sealed file names the extension from then on."""
    pg_sealed.grant(hours=2)
    pg_sealed.apply()
    first = pg_sealed.sealed()
    assert first is not None
    root = pg_sealed.repo.root
    made = CliRunner().invoke(main, ["extend", "grants/db1/alice.yaml", "--for", "1h",
                                     "--repo", str(root), "--format", "json"],
                              env={"GIT_AUTHOR_EMAIL": "alice@example.com"},
                              catch_exceptions=False)
    assert made.exit_code == 0, made.output
    extension = json.loads(made.stdout)
    git(root, "merge", "-q", "--no-ff", "-m", "Merge the extension", extension["branch"])
    text = (root / extension["file"]).read_text()
    assert "delivery: sealed" in text and "extends: grants/db1/alice.yaml" in text
    pg_sealed.apply()
    kept = pg_sealed.sealed()
    assert kept is not None and kept["grant"] == extension["file"]
    assert (kept["verifier"], kept["password"]) == (first["verifier"], first["password"])
    ok = pg_sealed.connect(pg_sealed.key, *PSQL, config=config_dir)
    assert ok.returncode == 0 and ok.stdout.strip() == pg_sealed.world.login(), ok.stderr


@pytest.mark.prints_password
def test_print_env_opens_the_sealed_password_too(pg_sealed: Sealed, config_dir: Path) -> None:
    pg_sealed.grant()
    pg_sealed.apply()
    found = pg_sealed.sealed()
    assert found is not None
    proc = run(pg_sealed.repo.root, "connect", "db1", "--as", "alice", "--identity",
               str(pg_sealed.key), "--print-env", config=config_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"export PGPASSWORD={opened(found, pg_sealed.key)}" in proc.stdout.splitlines()
