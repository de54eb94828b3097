"""The suite's secret scan (tests/secretscan.py) finds a planted password wherever the suite
could write one, and not in the secret store where it belongs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import credentials
from tests import secretscan
from tests.helpers import AccessRepo, git

PASSWORD = "Zq3-planted_password-9xYw"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside the session's temporary folder: the planted leaks must not fail the real scan."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def test_a_password_in_a_file_an_output_or_any_git_object_is_found(tmp_path: Path) -> None:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("grants/db1/leak.yaml", f"reason: oops {PASSWORD}\n")
    repo.commit("leak")
    repo.remove("grants/db1/leak.yaml")
    repo.commit("hide it")  # gone from the tree, still in history
    (tmp_path / "out.log").write_text(f"password={PASSWORD}\n")
    quiet, secretscan.COLLECTOR.quiet = secretscan.COLLECTOR.quiet, True
    try:  # the scan's own git output is not the suite's
        hits = secretscan.scan({PASSWORD}, [("stdout of a test", f"user:{PASSWORD}@host")],
                               [tmp_path])
    finally:
        secretscan.COLLECTOR.quiet = quiet
    assert any(h.startswith("stdout of a test") for h in hits)
    assert any(h.startswith(str(tmp_path / "out.log")) for h in hits)
    assert any(h.startswith("git objects of") for h in hits)
    assert all(PASSWORD not in h for h in hits)  # the report itself does not repeat it


def test_the_secret_store_is_where_passwords_belong(tmp_path: Path) -> None:
    store = tmp_path / "config" / "secrets" / "db1" / "jit_alice_readonly"
    store.parent.mkdir(parents=True)
    store.write_text(PASSWORD + "\n")
    assert secretscan.stored_passwords([tmp_path]) == {PASSWORD}
    assert secretscan.scan({PASSWORD}, [], [tmp_path]) == []


def test_phrases_are_matched_as_substrings_and_made_passwords_are_recorded(
        tmp_path: Path) -> None:
    phrase = "correct horse battery staple"
    (tmp_path / "x.txt").write_text(f"said: {phrase}.")
    assert secretscan.scan({phrase}, [], [tmp_path])
    made = credentials.new_password()
    assert made in secretscan.COLLECTOR.passwords
    git(tmp_path, "init", "-q")
    assert secretscan.scan({made}, [], [tmp_path]) == []
    secretscan.COLLECTOR.passwords.discard(made)


def test_a_sealed_password_is_opened_with_the_test_keys_and_then_looked_for(
        tmp_path: Path) -> None:
    """A password sealed by a subprocess (never seen by the collector) is opened from the
    sealed file in git with a private key the tests made, and then found where it leaked."""
    from reconciler.sealed import SealedFile, seal
    from tests.sealing_world import ssh_key

    _, public = ssh_key(tmp_path / "keys", "scan")
    sealed = SealedFile("db1", "jit_a_readonly", "a", "grants/db1/a.yaml", "run", "V",
                        seal(PASSWORD, (public,)))
    repo = AccessRepo(tmp_path / "repo")
    repo.write("sealed/db1/jit_a_readonly.yaml", sealed.dump().decode())
    repo.commit("sealed")
    repo.remove("sealed/db1/jit_a_readonly.yaml")
    repo.commit("revoked: gone from the tip, kept in history")
    assert secretscan.sealed_passwords([tmp_path]) == {PASSWORD}
    (tmp_path / "apply.log").write_text(f"oops {PASSWORD}\n")
    assert secretscan.scan({PASSWORD}, [], [tmp_path])
