"""`apply` against the real PostgreSQL, its admin DSN read from each source reconciler/dsn.py
knows: a target's dsn_file, the variable a repository.dsn_env template folds the target's name
into, and systemd's $CREDENTIALS_DIRECTORY/<target>-dsn for a target whose variable is unset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from reconciler.cli import main
from tests.helpers import grant, policy
from tests.integration.conftest import World


def write_policy(w: World, target: str = "db1", repository: dict[str, str] | None = None,
                 **source: str) -> None:
    """The world's policy with `target` reading its DSN from `source` (none: the template)."""
    doc: dict[str, Any] = policy(target=target, prefix=w.prefix, groups=(w.group,))
    del doc["targets"][target]["dsn_env"]
    doc["targets"][target].update(source)
    if repository:
        doc["repository"] = repository
    w.repo.write("policies/main.yaml", yaml.safe_dump(doc, sort_keys=False))
    w.repo.write(f"grants/{target}/alice.yaml", grant(target=target))
    w.repo.commit("policy and grant")


def secret_file(path: Path, dsn: str, mode: int = 0o600) -> Path:
    path.write_text(dsn + "\n")
    path.chmod(mode)
    return path


def apply(w: World, env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, ["apply", "--repo", str(w.repo.root)], env=env,
                              catch_exceptions=False)


def test_apply_reads_the_dsn_from_a_dsn_file(world: World, tmp_path: Path) -> None:
    path = secret_file(tmp_path / "db1.dsn", world.admin_dsn)
    write_policy(world, dsn_file=str(path))
    run = world.run(env={})
    assert [t.error for t in run.targets] == [None]
    role = world.role(world.login())
    assert role is not None and role["rolcanlogin"]


def test_apply_reads_the_folded_variable_of_the_repository_template(world: World) -> None:
    write_policy(world, target="orders-prod", repository={"dsn_env": "JG_T_{target}_DSN"})
    run = world.run(env={"JG_T_ORDERS_PROD_DSN": world.admin_dsn})
    assert [(t.target.name, t.error) for t in run.targets] == [("orders-prod", None)]
    assert world.role(world.login()) is not None


def test_apply_reads_the_file_of_the_repository_template(world: World, tmp_path: Path) -> None:
    secret_file(tmp_path / "orders-prod", world.admin_dsn, 0o400)
    write_policy(world, target="orders-prod",
                 repository={"dsn_file": f"{tmp_path}/{{target}}"})
    assert [t.error for t in world.run(env={}).targets] == [None]
    assert world.role(world.login()) is not None


def test_apply_reads_a_systemd_credential_when_the_variable_is_unset(world: World,
                                                                    tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    secret_file(credentials / "db1-dsn", world.admin_dsn, 0o400)
    world.add_grant()
    result = apply(world, {"CREDENTIALS_DIRECTORY": str(credentials), world.dsn_env: ""})
    assert result.exit_code == 0, result.output
    assert world.role(world.login()) is not None


def test_an_unset_variable_without_a_credential_fails_that_target_only(world: World,
                                                                      tmp_path: Path) -> None:
    """The other target is reconciled; the one without a DSN is one line and exit 1."""
    doc = policy(dsn_env=world.dsn_env, prefix=world.prefix, groups=(world.group,))
    doc["targets"]["db2"] = {"engine": "postgres", "dsn_file": str(tmp_path / "absent"),
                             "role_prefix": world.prefix[:-1] + "x_"}
    world.repo.write("policies/main.yaml", yaml.safe_dump(doc, sort_keys=False))
    world.repo.commit("two targets")
    world.add_grant()
    result = apply(world, world.env)
    assert result.exit_code == 1
    assert f"DSN file {tmp_path}/absent does not exist" in result.output
    assert world.role(world.login()) is not None


def jitgrant(w: World, env: dict[str, str], *command: str) -> Result:
    return CliRunner().invoke(main, [*command, "--repo", str(w.repo.root)], env=env,
                              catch_exceptions=False)


def test_a_malformed_dsn_in_a_file_names_the_file(world: World, tmp_path: Path) -> None:
    path = secret_file(tmp_path / "db1.dsn", "postgres:/nobody@127.0.0.1:1/db")
    write_policy(world, dsn_file=str(path))
    (error,) = [t.error for t in world.run(env={}).targets]
    assert error is not None and f"the DSN in {path} is malformed" in error


def test_standing_reports_a_refused_file_and_skips_a_missing_one(world: World,
                                                                 tmp_path: Path) -> None:
    path = secret_file(tmp_path / "db1.dsn", world.admin_dsn, 0o604)
    write_policy(world, dsn_file=str(path))
    refused = jitgrant(world, {}, "standing")
    assert refused.exit_code == 1
    assert f"jitgrant: error: db1: DSN file {path} is refused: other users have access to " \
           "it (mode 0604)" in refused.stderr
    path.unlink()
    missing = jitgrant(world, {}, "standing")
    assert missing.exit_code == 1
    assert missing.stderr == ("jitgrant: error: no target has its DSN environment variable "
                              f"set: db1 (file {path})\n")


def test_status_notes_a_refused_file_and_still_answers(world: World, tmp_path: Path) -> None:
    path = secret_file(tmp_path / "db1.dsn", world.admin_dsn, 0o660)
    write_policy(world, dsn_file=str(path))
    result = jitgrant(world, {}, "status", "--all")
    assert result.exit_code == 0, result.output
    assert f"db1: could not check the logins: DSN file {path} is refused: its group may " \
           "write it" in result.stderr
