"""A DSN file (a target's dsn_file, or systemd's credential) that others could read or plant
is refused by `jitgrant apply`: one line naming the file, never its content, exit 1, and
nothing changed in the database. A directory or a FIFO in its place must not hang the run (the
watchdog in conftest.py ends a hung test)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.credentials import new_password
from tests.conftest import PgServer
from tests.helpers import grant, policy
from tests.integration.conftest import World

OTHER_UID = 65534  # nobody: a user that exists everywhere, never created here


@pytest.fixture
def world(pg15: PgServer, tmp_path: Path) -> Iterator[World]:
    w = World(pg15, tmp_path / "repo")
    yield w
    w.cleanup()


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    """Where the tests put their DSN files, removed after each test: they hold the generated
    passwords on purpose, and the session's secret scan reads every file left behind."""
    folder = tmp_path / "dsn-files"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder)


def dsn_with_password(w: World) -> tuple[str, str]:
    """The world's admin DSN with a generated password in it (the server trusts the local
    connection, so it still works; the session's secret scan looks for the password too)."""
    password = new_password()
    host = w.server.params.get("host", "127.0.0.1")
    port = w.server.params.get("port", "5432")
    user = w.server.params.get("user", "root")
    return f"postgresql://{user}:{quote(password, safe='')}@{host}:{port}/postgres", password


def with_dsn_file(w: World, path: Path) -> None:
    doc = policy(prefix=w.prefix, groups=(w.group,))
    del doc["targets"]["db1"]["dsn_env"]
    doc["targets"]["db1"]["dsn_file"] = str(path)
    w.repo.write("policies/main.yaml", yaml.safe_dump(doc, sort_keys=False))
    w.repo.write("grants/db1/alice.yaml", grant())
    w.repo.commit("a target with a DSN file")


def apply(w: World, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["apply", "--repo", str(w.repo.root)], env=env or {},
                              catch_exceptions=False)


def assert_refused(w: World, result: Result, path: Path, why: str, *hidden: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if f"DSN file {path}" in line]
    assert len(lines) == 1 and why in lines[0], result.output
    for secret in hidden:
        assert secret not in result.output
    assert w.role(w.login()) is None  # nothing changed on the server


def plant(kind: str, path: Path, dsn: str) -> None:
    if kind == "directory":
        path.mkdir(mode=0o700)
    elif kind == "fifo":
        os.mkfifo(path, 0o600)  # no writer ever comes: a blocking open would wait forever
    else:
        path.write_text(dsn + "\n")
        path.chmod({"world-readable": 0o644, "group-writable": 0o660}[kind])


REFUSALS = {"world-readable": "other users have access to it (mode 0644)",
            "group-writable": "its group may write it (mode 0660)",
            "directory": "it is a directory, not a regular file",
            "fifo": "it is a FIFO, not a regular file"}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_a_dsn_file_others_could_read_or_that_is_no_file_is_refused(world: World,
                                                                   files: Path,
                                                                   kind: str) -> None:
    dsn, password = dsn_with_password(world)
    path = files / "db1.dsn"
    plant(kind, path, dsn)
    with_dsn_file(world, path)
    assert_refused(world, apply(world), path, REFUSALS[kind], dsn, password)


def test_a_world_readable_systemd_credential_is_refused_not_skipped(world: World,
                                                                   files: Path) -> None:
    dsn, password = dsn_with_password(world)
    credentials = files / "credentials"
    credentials.mkdir()
    plant("world-readable", credentials / "db1-dsn", dsn)
    world.add_grant()
    result = apply(world, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert_refused(world, result, credentials / "db1-dsn", REFUSALS["world-readable"], dsn,
                   password)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_symlink_to_another_users_file_is_refused(world: World, files: Path) -> None:
    """The link is followed (Kubernetes mounts Secrets through links), and the file it leads
    to is checked: another user's file, however private, is not jitgrant's to trust."""
    dsn, password = dsn_with_password(world)
    theirs = files / "theirs.dsn"
    theirs.write_text(dsn + "\n")
    theirs.chmod(0o600)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    link = files / "db1.dsn"
    link.symlink_to(theirs)
    with_dsn_file(world, link)
    assert_refused(world, apply(world), link, f"it is owned by uid {OTHER_UID}", dsn, password)


def test_the_same_file_made_private_is_read(world: World, files: Path) -> None:
    """The refusals above are about the file's permissions, not its content."""
    dsn, _ = dsn_with_password(world)
    path = files / "db1.dsn"
    plant("world-readable", path, dsn)
    with_dsn_file(world, path)
    path.chmod(0o600)
    result = apply(world)
    assert result.exit_code == 0, result.output
    assert world.role(world.login()) is not None
