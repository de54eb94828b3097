"""Sealed delivery with a non-superuser reconciler (docs/least-privilege.md), on servers that
check passwords. Such a reconciler cannot read password verifiers (pg_authid), so it cannot
check that the server holds a sealed file's verifier: it keeps the sealed file that names the
login and its grant, and never sets a password it did not make itself this run. A run with
nothing to change commits nothing, an extension keeps the password, a new grant rotates it;
after each, the grantee's key still opens a password that logs in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reconciler.credentials import scram_sha256_verifier
from tests.conftest import PgServer
from tests.helpers import git, utc
from tests.integration.conftest import World
from tests.integration.test_least_privilege import least_privilege_world
from tests.integration.test_sealed import PSQL, Sealed, opened, sealed_on_postgres
from tests.sealing_world import sealed_grant


@pytest.fixture
def lp(scram_pg: PgServer, tmp_path: Path) -> Iterator[World]:
    with least_privilege_world(scram_pg, tmp_path / "repo") as w:
        yield w


def logs_in(s: Sealed, config: Path) -> str:
    """The password the grantee's key opens at the tip, after checking it logs in."""
    found = s.sealed()
    assert found is not None
    done = s.connect(s.key, *PSQL, config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == s.world.login()
    return opened(found, s.key)


def test_a_non_superuser_reconciler_keeps_extends_and_rotates_a_sealed_password(
        lp: World, tmp_path: Path, config_dir: Path) -> None:
    s = sealed_on_postgres(lp, tmp_path)
    s.grant()
    s.apply()
    password = logs_in(s, config_dir)
    head = git(s.repo.root, "rev-parse", "HEAD")
    s.apply()
    assert git(s.repo.root, "rev-parse", "HEAD") == head  # nothing to change, no commit
    assert logs_in(s, config_dir) == password

    s.repo.write("grants/db1/alice.yaml", sealed_grant(expires=utc(hours=5)))
    s.repo.commit("alice: extended")
    s.apply()
    assert logs_in(s, config_dir) == password  # an extension keeps it

    git(s.repo.root, "rm", "-q", "grants/db1/alice.yaml")
    s.repo.write("grants/db1/alice-again.yaml", sealed_grant(expires=utc(hours=6)))
    s.repo.commit("alice: a new grant")
    s.apply()
    assert logs_in(s, config_dir) != password  # a new grant: a new password, set on the server


def test_a_planted_sealed_file_never_sets_a_password(lp: World, tmp_path: Path,
                                                      config_dir: Path) -> None:
    """Trusted without its verifier checked, a sealed file a pull request rewrote could at worst
    keep the grantee from their password: apply never sets the verifier it carries."""
    s = sealed_on_postgres(lp, tmp_path)
    s.grant()
    s.apply()
    password = logs_in(s, config_dir)
    path = f"sealed/db1/{s.world.login()}.yaml"
    text = (s.repo.root / path).read_text()
    found = s.sealed()
    assert found is not None
    planted = text.replace(found["verifier"], scram_sha256_verifier("mallory-knows-this"))
    (s.repo.root / path).write_text(planted)
    s.repo.commit("a planted verifier")
    s.apply()
    with pytest.raises(psycopg.OperationalError):  # the planted password is no login
        psycopg.connect(s.world.server.login_dsn(s.world.login(), "mallory-knows-this")).close()
    assert opened(found, s.key) == password
    psycopg.connect(s.world.server.login_dsn(s.world.login(), password)).close()
