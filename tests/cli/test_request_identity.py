"""Where `jitgrant request` keeps the password without $JITGRANT_CONFIG_DIR, and who it takes
you for when git's identity comes from an `includeIf` section: README claims (issue 12, finding
11) that had no test."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.cli.test_request import make_repo, new_branch, request
from tests.helpers import git


def test_without_jitgrant_config_dir_the_store_is_under_xdg_config_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JITGRANT_CONFIG_DIR", raising=False)
    xdg = tmp_path / "xdg"
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setenv("HOME", str(home))
    repo = make_repo(tmp_path / "repo", monkeypatch)
    result = request(repo)
    assert result.exit_code == 0, result.stderr
    stored = xdg / "jitgrant" / "secrets" / "db1" / "jit_alice_readonly"
    assert stored.is_file() and str(stored) in result.stdout + result.stderr
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert not (home / ".config").exists()  # ~/.config is only the last resort


def test_the_requester_is_the_email_an_include_if_section_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository has no user.email of its own; the global configuration's default is
    someone unknown, overridden for this folder by `includeIf "gitdir:…"`, as git does."""
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("EMAIL", raising=False)
    repo = make_repo(tmp_path / "repo", monkeypatch)
    git(repo.root, "config", "--unset", "user.email")
    work = tmp_path / "work.gitconfig"
    work.write_text("[user]\n\temail = Alice@Example.com\n")
    glob = tmp_path / "global.gitconfig"
    glob.write_text("[user]\n\temail = nobody@example.com\n"
                    f'[includeIf "gitdir:{repo.root.resolve()}/"]\n\tpath = {work}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(glob))
    result = request(repo)
    assert result.exit_code == 0, result.stderr
    assert new_branch(repo).startswith("access/alice/db1-readonly-")
    # Outside that folder the same configuration names nobody jitgrant knows.
    other = make_repo(tmp_path / "elsewhere", monkeypatch)
    git(other.root, "config", "--unset", "user.email")
    refused = request(other)
    assert refused.exit_code == 1
    assert "user.email" in refused.stderr
