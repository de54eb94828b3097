"""Sealed delivery against a hostile pull-request author, on a scram-authenticated PostgreSQL.

- A sealed file written by hand (a verifier and a ciphertext of the author's own) is never
  trusted: apply makes the password anew and seals it to the grantee; the author's password
  does not log in and the author's key opens nothing.
- A pull request that swaps the grantee's key for the author's while a grant is live changes
  nothing until the next new grant (which needs its own reviewed pull request).
- A key list of 500 keys, a huge key, a private key pasted by mistake: refused at validate
  time with `path:line: message`, never echoed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.sealed import SealedFile, seal
from tests.helpers import AccessRepo, git
from tests.integration.conftest import World, scram_world  # noqa: F401 - fixtures
from tests.integration.test_sealed import Sealed, opened, sealed_on_postgres
from tests.sealing_world import sealed_grant, sealed_policy, ssh_key


def server_verifier(world: World) -> str | None:
    with world.server.conn() as c:
        row = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                        [world.login()]).fetchone()
    return None if row is None else str(row[0])


def logs_in(world: World, password: str) -> bool:
    try:
        psycopg.connect(world.server.login_dsn(world.login(), password),
                        connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


def forged(s: Sealed, key_line: str) -> tuple[str, bytes]:
    """A sealed file in jitgrant's shape for alice's login, of a password the author knows,
    sealed to the author's key: the password and the file's bytes."""
    password = new_password()
    fake = SealedFile("db1", s.world.login(), "alice", "grants/db1/alice.yaml", "forged",
                      scram_sha256_verifier(password), seal(password, (key_line,)))
    return password, fake.dump()


@pytest.fixture
def pg_sealed(scram_world: World, tmp_path: Path) -> Sealed:  # noqa: F811 - the fixture
    return sealed_on_postgres(scram_world, tmp_path)


@pytest.fixture
def mallory(tmp_path: Path) -> tuple[Path, str]:
    return ssh_key(tmp_path / "mallory-keys", "mallory-own")


def test_a_sealed_file_added_by_hand_is_not_trusted(pg_sealed: Sealed, config_dir: Path,
                                                    mallory: tuple[Path, str]) -> None:
    known, data = forged(pg_sealed, mallory[1])
    pg_sealed.repo.write(f"sealed/db1/{pg_sealed.world.login()}.yaml", data)
    pg_sealed.grant()  # the same pull request adds the grant and the forged file
    pg_sealed.apply()
    found = pg_sealed.sealed()
    assert found is not None and found["run"] != "forged"
    assert server_verifier(pg_sealed.world) == found["verifier"]
    assert not logs_in(pg_sealed.world, known)
    assert logs_in(pg_sealed.world, opened(found, pg_sealed.key))
    with pytest.raises(Exception, match="cannot open the sealed password"):
        opened(found, mallory[0])


def test_a_sealed_file_replaced_by_hand_makes_a_new_password(pg_sealed: Sealed,
                                                             mallory: tuple[Path, str]) -> None:
    pg_sealed.grant()
    pg_sealed.apply()
    before = pg_sealed.sealed()
    assert before is not None
    known, data = forged(pg_sealed, mallory[1])
    pg_sealed.repo.write(f"sealed/db1/{pg_sealed.world.login()}.yaml", data)
    pg_sealed.repo.commit("a pull request 'fixing' the sealed file")
    pg_sealed.apply()
    after = pg_sealed.sealed()
    assert after is not None and after["run"] != "forged"
    assert after["verifier"] not in (before["verifier"], scram_sha256_verifier(known))
    assert server_verifier(pg_sealed.world) == after["verifier"]
    assert not logs_in(pg_sealed.world, known)


def test_a_key_swapped_while_live_changes_nothing_until_a_new_grant(
        pg_sealed: Sealed, mallory: tuple[Path, str]) -> None:
    pg_sealed.grant()
    pg_sealed.apply()
    before = pg_sealed.sealed()
    policy = sealed_policy({"alice": [mallory[1]]}, dsn_env=pg_sealed.world.dsn_env,
                           prefix=pg_sealed.world.prefix, groups=(pg_sealed.world.group,))
    pg_sealed.repo.write("policies/main.yaml", policy)
    pg_sealed.repo.commit("a pull request swapping alice's key")
    pg_sealed.apply()
    after = pg_sealed.sealed()
    assert after == before and after is not None
    with pytest.raises(Exception, match="cannot open the sealed password"):
        opened(after, mallory[0])


# -- keys refused at validate time ------------------------------------------------------------


def validate(tmp_path: Path, keys: list[str]) -> Any:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", sealed_policy({"alice": keys}))
    repo.write("grants/db1/alice.yaml", sealed_grant())
    repo.commit("keys")
    return CliRunner().invoke(main, ["validate", "--repo", str(repo.root)],
                              catch_exceptions=False)


def test_a_private_key_pasted_by_mistake_is_refused_and_never_echoed(tmp_path: Path) -> None:
    private, _ = ssh_key(tmp_path / "k", "pasted")
    text = private.read_text()
    result = validate(tmp_path, [text])
    assert result.exit_code == 1
    assert "policies/main.yaml:" in result.output and "PRIVATE key" in result.output
    body = [line for line in text.splitlines() if "-----" not in line]
    assert not any(line in result.output for line in body)
    assert "delivery: sealed needs people.alice.keys" in result.output  # nothing to seal to


@pytest.mark.parametrize("count", [500])
def test_a_list_of_500_keys_is_refused(tmp_path: Path, count: int) -> None:
    _, public = ssh_key(tmp_path / "k", "many")
    result = validate(tmp_path, [public] * count)
    assert result.exit_code == 1
    assert f"people.alice.keys: {count} keys; at most 32" in result.output


def test_a_huge_key_is_refused_without_echo(tmp_path: Path) -> None:
    huge = "ssh-ed25519 " + "A" * 100_000
    result = validate(tmp_path, [huge])
    assert result.exit_code == 1
    assert "longer than 16384 characters" in result.output
    assert "A" * 100 not in result.output


@pytest.mark.parametrize("kind, said", [("ecdsa", "ECDSA keys are not supported"),
                                        ("dsa", "DSA keys are not supported")])
def test_unsupported_key_kinds_are_named(tmp_path: Path, kind: str, said: str) -> None:
    try:
        _, public = ssh_key(tmp_path / "k", kind, kind=kind)
    except Exception:  # noqa: BLE001 - OpenSSH 9.8+ no longer makes DSA keys
        public = "ssh-dss AAAAB3NzaC1kc3MAAACBAP8= dsa"
    result = validate(tmp_path, [public])
    assert result.exit_code == 1
    assert said in result.output and "policies/main.yaml:" in result.output


def test_a_key_that_does_not_parse_names_its_line(tmp_path: Path) -> None:
    result = validate(tmp_path, ["ssh-ed25519 not-base64 x"])
    line = next(x for x in result.output.splitlines() if "keys[0]" in x)
    assert line.startswith("policies/main.yaml:") and "not a public key" in line
    assert git(tmp_path / "repo", "status", "--short") == ""


def test_a_request_made_for_someone_else_is_sealed_to_the_grantee(
        pg_sealed: Sealed, tmp_path: Path) -> None:
    """bob may ask for alice (requesters_for_others); the grant he writes is sealed, and the
    password apply makes opens with alice's key only, never bob's."""
    bob_key, bob_public = ssh_key(tmp_path / "bob-keys", "bob")
    world = pg_sealed.world
    alice_public = pg_sealed.key.with_suffix(".pub").read_text().strip()
    pg_sealed.repo.write("policies/main.yaml", sealed_policy(
        {"alice": [alice_public], "bob": [bob_public]}, dsn_env=world.dsn_env,
        prefix=world.prefix, groups=(world.group,), requesters_for_others=["@bob-gh"]))
    pg_sealed.repo.commit("bob may ask for others")
    root = pg_sealed.repo.root
    asked = CliRunner().invoke(main, ["request", "db1", "readonly", "--for", "1h", "--reason",
                                      "INC-3 for alice", "--as", "alice", "--sealed",
                                      "--format", "json", "--repo", str(root)],
                               env={"GIT_AUTHOR_EMAIL": "bob@example.com"},
                               catch_exceptions=False)
    assert asked.exit_code == 0, asked.output
    branch = json.loads(asked.stdout)["branch"]
    git(root, "merge", "-q", "--no-ff", "-m", "Merge pull request #2 from bob", branch)
    pg_sealed.apply()
    found = pg_sealed.sealed()
    assert found is not None and found["grantee"] == "alice"
    assert logs_in(world, opened(found, pg_sealed.key))
    with pytest.raises(Exception, match="cannot open the sealed password"):
        opened(found, bob_key)


def test_a_huge_or_broken_sealed_file_stops_nothing(pg_sealed: Sealed) -> None:
    """A pull request that plants a 2 MiB blob where the sealed file goes, and YAML that is no
    sealed file beside it: apply reads neither, grants, and writes its own file over the blob;
    the junk in sealed/db1/ is removed from the tip with the audit commit."""
    login = pg_sealed.world.login()
    pg_sealed.repo.write(f"sealed/db1/{login}.yaml", b"#" * (2 * 1024 * 1024))
    pg_sealed.repo.write("sealed/db1/junk.yaml", "a: &a [*a]\n")
    pg_sealed.grant()
    pg_sealed.apply()
    found = pg_sealed.sealed()
    assert found is not None and server_verifier(pg_sealed.world) == found["verifier"]
    assert git(pg_sealed.repo.root, "ls-tree", "--name-only", "HEAD", "sealed/db1/") == \
        f"sealed/db1/{login}.yaml"
