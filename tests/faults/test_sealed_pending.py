"""A sealed password whose audit commit main refused travels with it: the commit goes to
origin's jitgrant/audit-pending/<run id> branch (gitrepo.PENDING), the runner is thrown away,
and the next run, on a fresh clone, keeps the password that branch holds (the server has its
verifier) instead of making a new one, and brings the sealed file to main. Real git (a bare
origin with a pre-receive hook), a scram-authenticated PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner

from reconciler.cli import main
from tests.faults.test_failures import protected_origin
from tests.helpers import git
from tests.integration.conftest import World, scram_world  # noqa: F401 - the fixture
from tests.integration.test_sealed import Sealed, sealed_on_postgres


def apply_push(clone: Path, env: dict[str, str]) -> int:
    done = CliRunner().invoke(main, ["apply", "--push", "--repo", str(clone)], env=env,
                              catch_exceptions=False)
    return done.exit_code


def test_a_refused_push_does_not_cost_the_password(scram_world: World,  # noqa: F811
                                                   tmp_path: Path) -> None:
    s: Sealed = sealed_on_postgres(scram_world, tmp_path)
    s.grant()
    origin = protected_origin(s.repo.root, tmp_path)
    login = scram_world.login()
    subprocess.run(["git", "clone", "-q", str(origin), str(tmp_path / "ci1")], check=True)
    assert apply_push(tmp_path / "ci1", scram_world.env) == 1
    [pending] = git(origin, "for-each-ref", "--format=%(refname)",
                    "refs/heads/jitgrant/audit-pending/").splitlines()
    kept = yaml.safe_load(git(origin, "show", f"{pending}:sealed/db1/{login}.yaml"))
    shutil.rmtree(tmp_path / "ci1")  # the runner is gone

    (origin / "hooks/pre-receive").unlink()
    subprocess.run(["git", "clone", "-q", str(origin), str(tmp_path / "ci2")], check=True)
    assert apply_push(tmp_path / "ci2", scram_world.env) == 0
    delivered = yaml.safe_load(git(origin, "show", f"main:sealed/db1/{login}.yaml"))
    assert delivered == kept  # the same password: not made anew
    with scram_world.server.conn() as c:
        row = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                        [login]).fetchone()
    assert row is not None and row[0] == kept["verifier"]
    assert git(origin, "for-each-ref", "refs/heads/jitgrant/") == ""
