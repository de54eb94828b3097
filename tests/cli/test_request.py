"""`jitgrant request`, `extend` and `revoke` on real git repositories: one commit on a new
branch whose parent is HEAD, the password only in the local store, and refusals that write
nothing."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from reconciler.credentials import (mysql_native_verifier, new_password,
                                    scram_sha256_verifier)
from reconciler.errors import UserError
from reconciler.load import SourceFile
from reconciler.requester import identify
from reconciler.timeutil import parse_timestamp
from reconciler.validate import load_policy
from tests.cli.conftest import head, jitgrant
from tests.helpers import AccessRepo, git, grant, policy, stamp, utc

BRANCH = re.compile(r"^access/alice/db1-readonly-(\d{8}T\d{6}Z)$")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local secret store in a folder of the test's own, never the real home."""
    folder = tmp_path / "config"
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(folder))
    return folder


def make_repo(root: Path, monkeypatch: pytest.MonkeyPatch, email: str = "alice@example.com",
              **target_extra: Any) -> AccessRepo:
    """An access repository on main whose git identity is `email` (from git config: the test
    session's GIT_AUTHOR_EMAIL is taken away)."""
    monkeypatch.delenv("GIT_AUTHOR_EMAIL", raising=False)
    repo = AccessRepo(root)
    repo.write("policies/main.yaml", policy(**target_extra))
    repo.commit("policy")
    git(root, "config", "user.email", email)
    return repo


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> AccessRepo:
    return make_repo(tmp_path / "repo", monkeypatch)


def request(repo: AccessRepo, *args: str, target: str = "db1",
            access: str = "readonly") -> Result:
    extra = list(args)
    if "--for" not in extra:
        extra += ["--for", "2h"]
    if "--reason" not in extra:
        extra += ["--reason", "INC-1 look at stuck orders"]
    return jitgrant("request", target, access, *extra, "--repo", str(repo.root))


def branches(repo: AccessRepo) -> list[str]:
    return git(repo.root, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def new_branch(repo: AccessRepo) -> str:
    (found,) = [b for b in branches(repo) if b != "main"]
    return found


def branch_file(repo: AccessRepo, branch: str) -> tuple[str, dict[str, Any]]:
    """The one file the branch's commit adds, and its content."""
    (path,) = git(repo.root, "diff", "--name-only", "--diff-filter=A", f"{branch}^",
                  branch).split()
    return path, yaml.safe_load(git(repo.root, "show", f"{branch}:{path}"))


def stored_password(config: Path, login: str = "jit_alice_readonly") -> str:
    return (config / "secrets" / "db1" / login).read_text().rstrip("\n")


def objects(repo: AccessRepo) -> str:
    return git(repo.root, "count-objects", "-v")


def merge(repo: AccessRepo, branch: str) -> None:
    git(repo.root, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jitgrant: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def scram_matches(verifier: str, password: str) -> bool:
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$.*", verifier)
    assert m is not None, verifier
    salt = base64.b64decode(m.group(2))
    return scram_sha256_verifier(password, int(m.group(1)), salt) == verifier


# -- request: the success path ---------------------------------------------------------------


def test_request_commits_one_grant_on_a_new_branch_and_keeps_the_password_here(
        repo: AccessRepo, config: Path) -> None:
    before = head(repo)
    (repo.root / "notes.txt").write_text("untracked, outside grants/: left alone\n")
    result = request(repo, "--ticket", "INC-1")
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    m = BRANCH.match(branch)
    assert m is not None, branch
    # One commit whose parent is HEAD; the checkout, index and working tree are untouched.
    assert git(repo.root, "rev-list", "--parents", "-n", "1", branch).split()[1:] == [before]
    assert git(repo.root, "rev-list", "--count", f"main..{branch}") == "1"
    assert head(repo) == before and git(repo.root, "branch", "--show-current") == "main"
    assert git(repo.root, "status", "--porcelain") == "?? notes.txt"
    assert not (repo.root / "grants").exists()
    path, data = branch_file(repo, branch)
    assert path == f"grants/db1/alice-readonly-{m.group(1)}.yaml"
    assert list(data) == ["grantee", "target", "access", "expires", "reason", "ticket",
                          "password_verifier"]
    assert (data["grantee"], data["target"], data["access"]) == ("alice", "db1", "readonly")
    assert (data["reason"], data["ticket"]) == ("INC-1 look at stuck orders", "INC-1")
    made = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S%z")
    assert parse_timestamp(str(data["expires"])) == made + timedelta(hours=2)
    # The password: 0600 in a 0700 folder, and the verifier is its SCRAM verifier.
    secret = config / "secrets" / "db1" / "jit_alice_readonly"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    for folder in (secret.parent, secret.parent.parent, config):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    password = stored_password(config)
    assert len(password) >= 32
    assert scram_matches(data["password_verifier"], password)
    assert data["password_verifier"].startswith("SCRAM-SHA-256$4096:")
    # Never in git, never printed; the verifier is not printed either.
    history = git(repo.root, "log", "-p", "--all")
    assert password not in history
    for text in (result.stdout, result.stderr):
        assert password not in text and data["password_verifier"] not in text
    assert f"git push -u origin {branch}" in result.stdout
    assert str(secret) in result.stdout


def test_the_branch_passes_the_pull_request_checks(repo: AccessRepo, config: Path) -> None:
    assert request(repo).exit_code == 0
    branch = new_branch(repo)
    checked = jitgrant("validate", "--repo", str(repo.root), "--rev", branch, "--base", "main",
                       "--pr-author", "alice-gh")
    assert checked.exit_code == 0, checked.stderr


def test_a_later_start_and_a_mysql_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          config: Path) -> None:
    repo = make_repo(tmp_path / "my", monkeypatch, engine="mysql")
    starts = utc(hours=3)
    result = request(repo, "--starts", stamp(starts), "--for", "30m")
    assert result.exit_code == 0, result.stderr
    _, data = branch_file(repo, new_branch(repo))
    assert parse_timestamp(str(data["starts"])) == starts
    assert parse_timestamp(str(data["expires"])) == starts + timedelta(minutes=30)
    assert "ticket" not in data
    assert data["password_verifier"] == mysql_native_verifier(stored_password(config))
    assert f"from {stamp(starts)}" in result.stdout


def test_the_git_author_email_from_the_environment_wins(repo: AccessRepo, config: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "Bob@Example.com")  # case does not matter
    assert request(repo).exit_code == 0
    _, data = branch_file(repo, new_branch(repo))
    assert data["grantee"] == "bob"
    assert (config / "secrets" / "db1" / "jit_bob_readonly").exists()


def test_requesters_for_others_may_ask_for_someone_else_without_a_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """Issue 11, finding 11: nobody holds the password of a login attributed to someone else.
    The grant carries no verifier, nothing is stored here, and the command says what the
    grantee does next."""
    repo = make_repo(tmp_path / "r", monkeypatch, requesters_for_others=["@Alice-GH"])
    result = request(repo, "--as", "bob")
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert branch.startswith("access/bob/db1-readonly-")
    path, data = branch_file(repo, branch)
    assert data["grantee"] == "bob" and "password_verifier" not in data
    assert not (config / "secrets").exists() and "password:" not in result.stdout
    assert "this grant carries no password: only bob may hold the password of " \
        "jit_bob_readonly" in result.stderr
    assert f"jitgrant password {path}" in result.stderr
    checked = jitgrant("validate", "--repo", str(repo.root), "--rev", branch, "--base", "main",
                       "--pr-author", "alice-gh")
    assert checked.exit_code == 0, checked.stderr


def test_the_grantee_gives_the_login_a_password_of_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    repo = make_repo(tmp_path / "r", monkeypatch, requesters_for_others=["@alice-gh"])
    assert request(repo, "--as", "bob", "--ticket", "INC-7").exit_code == 0
    asked = new_branch(repo)
    path, old = branch_file(repo, asked)
    merge(repo, asked)
    git(repo.root, "branch", "-D", asked)
    # Someone else (alice, who asked) may not; bob may.
    assert_one_line_error(jitgrant("password", path, "--repo", str(repo.root)),
                          f"{path} is bob's grant: only bob may give its login a password")
    assert branches(repo) == ["main"]
    git(repo.root, "config", "user.email", "bob@example.com")
    assert_one_line_error(jitgrant("connect", "db1", "--repo", str(repo.root)),
                          f"{path} carries no password", f"`jitgrant password {path}`")
    result = jitgrant("password", path, "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert re.fullmatch(r"access/bob/db1-readonly-\d{8}T\d{6}Z-password", branch)
    rel, data = branch_file(repo, branch)
    assert re.fullmatch(r"grants/db1/bob-readonly-\d{8}T\d{6}Z-password\.yaml", rel)
    password = stored_password(config, "jit_bob_readonly")
    assert scram_matches(data["password_verifier"], password)
    assert (data["expires"], data["reason"], data["ticket"]) == (
        old["expires"], old["reason"], "INC-7")  # the same window: nothing more is asked
    for text in (result.stdout, result.stderr, git(repo.root, "log", "-p", "--all")):
        assert password not in text
    assert data["password_verifier"] not in result.stdout + result.stderr
    checked = jitgrant("validate", "--repo", str(repo.root), "--rev", branch, "--base", "main",
                       "--pr-author", "bob-gh")
    assert checked.exit_code == 0, checked.stderr


def test_asking_for_someone_else_on_a_mysql_target_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """A MySQL account needs a password from the start, which only its grantee may hold."""
    repo = make_repo(tmp_path / "my", monkeypatch, engine="mysql",
                     requesters_for_others=["@alice-gh"])
    assert_one_line_error(request(repo, "--as", "bob"),
                          "alice cannot ask for bob on the mysql target db1",
                          "bob asks: jitgrant request db1 readonly --for 2h --reason")
    assert branches(repo) == ["main"] and not (config / "secrets").exists()


def test_as_yourself_and_as_anyone_when_git_knows_nobody(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    repo = make_repo(tmp_path / "r", monkeypatch)
    assert request(repo, "--as", "alice").exit_code == 0
    # An identity that matches no person: --as says who you are (the pull request's author
    # check is the wall, not this machine).
    other = make_repo(tmp_path / "o", monkeypatch, email="laptop@home.example")
    assert request(other, "--as", "bob").exit_code == 0
    assert new_branch(other).startswith("access/bob/")


def test_the_gh_line_when_gh_is_on_path(repo: AccessRepo, config: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = request(repo, "--reason", "INC-2 it's 'quoted'")
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert f"gh pr create --head {branch} --base main --title 'Request readonly on db1" \
        in result.stdout
    assert "INC-2 it'\"'\"'s" in result.stdout  # shell-quoted


def test_a_second_request_replaces_the_stored_password_and_says_so(
        repo: AccessRepo, config: Path) -> None:
    assert request(repo).exit_code == 0
    first = stored_password(config)
    git(repo.root, "branch", "-m", new_branch(repo), "first")
    result = request(repo, "--for", "1h")
    assert result.exit_code == 0, result.stderr
    assert stored_password(config) != first
    assert "replaced the password stored for jit_alice_readonly" in result.stderr


# -- request: refusals write nothing ---------------------------------------------------------


@pytest.mark.parametrize(("args", "fragments"), [
    (["--target=nope"], ["unknown target 'nope'"]),
    (["--access=nope"], ["unknown access level 'nope'"]),
    (["--access=staging-only"], ["not allowed in environment 'production'"]),
    (["--for", "9h"], ["lasts 9h, over the 8h allowed for 'readonly'"]),
    (["--for", "soon"], ["--for 'soon': must be a duration"]),
    (["--starts", "2030-01-01T10:00:00"], ["--starts", "must include a time zone"]),
    (["--starts", "9999-12-31T23:00:00Z"], ["2h after 9999-12-31T23:00:00Z is past the year "
                                            "9999"]),
    (["--for", "999999w"], ["6999993d after ", "is past the year 9999"]),
    (["--reason", " "], ["reason:"]),
    (["--as", "bob"], ["alice may not ask for bob", "@alice-gh",
                       "targets.db1.requesters_for_others"]),
    (["--as", "nobody"], ["grantee: 'nobody' is not in people"]),
])
def test_refusals_are_one_line_and_write_nothing(repo: AccessRepo, config: Path,
                                                 args: list[str], fragments: list[str]) -> None:
    target = next((a.split("=")[1] for a in args if a.startswith("--target=")), "db1")
    access = next((a.split("=")[1] for a in args if a.startswith("--access=")), "readonly")
    args = [a for a in args if not a.startswith(("--target=", "--access="))]
    before = objects(repo)
    result = request(repo, *args, target=target, access=access)
    assert_one_line_error(result, *fragments)
    assert branches(repo) == ["main"]
    assert objects(repo) == before  # not even an unreachable blob
    assert not config.exists()


@pytest.mark.parametrize(("email", "access", "fragments"), [
    ("bob@example.com", "readwrite", ["'readwrite' is only for groups sre; bob is in backend"]),
    ("carol@example.com", "readonly", ["grantee: 'carol' is not active"]),
    ("stranger@example.com", "readonly", ["who are you?", "'stranger@example.com'", "--as"]),
])
def test_who_you_are_decides_what_you_may_ask_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path, email: str,
        access: str, fragments: list[str]) -> None:
    repo = make_repo(tmp_path / "r", monkeypatch, email=email)
    assert_one_line_error(request(repo, access=access), *fragments)
    assert branches(repo) == ["main"] and not config.exists()


def test_a_right_that_comes_from_a_team_cannot_be_checked_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    repo = make_repo(tmp_path / "r", monkeypatch, requesters_for_others=["@acme/oncall"])
    assert_one_line_error(request(repo, "--as", "bob"), "team membership cannot be checked")
    assert branches(repo) == ["main"] and not config.exists()


@pytest.mark.parametrize("dirt", ["modified", "staged", "untracked grant"])
def test_a_dirty_working_tree_is_refused(repo: AccessRepo, config: Path, dirt: str) -> None:
    if dirt == "untracked grant":
        repo.write("grants/db1/draft.yaml", grant())
    else:
        text = (repo.root / "policies/main.yaml").read_text()
        (repo.root / "policies/main.yaml").write_text(text + "# edited\n")
        if dirt == "staged":
            git(repo.root, "add", "policies/main.yaml")
    assert_one_line_error(request(repo), "uncommitted changes", "commit or stash")
    assert branches(repo) == ["main"] and not config.exists()


def test_invalid_policies_at_head_are_refused(repo: AccessRepo, config: Path) -> None:
    repo.write("policies/more.yaml", {"people": {"alice": {"email": "a@b.c"}}})
    repo.commit("alice twice")
    assert_one_line_error(request(repo), "the policies at HEAD are invalid",
                          "people.alice is defined twice")
    assert branches(repo) == ["main"] and not config.exists()


# -- push ------------------------------------------------------------------------------------


def test_push_sends_the_branch_to_origin_and_tracks_it(repo: AccessRepo, config: Path,
                                                       tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo.root, "remote", "add", "origin", str(origin))
    git(repo.root, "push", "-q", "origin", "main")
    result = request(repo, "--push")
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert git(origin, "rev-parse", f"refs/heads/{branch}") == \
        git(repo.root, "rev-parse", branch)
    assert git(repo.root, "rev-parse", "--abbrev-ref", f"{branch}@{{upstream}}") == \
        f"origin/{branch}"
    assert f"pushed {branch} to origin" in result.stdout
    assert "git push" not in result.stdout
    assert stored_password(config) not in git(origin, "log", "-p", "--all")


def test_without_push_nothing_leaves_the_machine(repo: AccessRepo, config: Path,
                                                 tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo.root, "remote", "add", "origin", str(origin))
    assert request(repo).exit_code == 0
    assert git(origin, "for-each-ref") == ""


def test_a_failed_push_says_the_branch_is_made(repo: AccessRepo, config: Path) -> None:
    result = request(repo, "--push")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("jitgrant: error: git push of access/")
    assert new_branch(repo) in result.stdout  # made, and said so before the push failed


# -- extend ----------------------------------------------------------------------------------


def committed_grant(repo: AccessRepo, config: Path, name: str = "alice-old", **kwargs: Any
                    ) -> tuple[str, str]:
    """A grant on main with a password in the local store, as an earlier request left it."""
    password = new_password()
    (config / "secrets" / "db1").mkdir(parents=True, mode=0o700)
    (config / "secrets" / "db1" / "jit_alice_readonly").write_text(password + "\n")
    rel = f"grants/db1/{name}.yaml"
    repo.write(rel, grant(verifier=scram_sha256_verifier(password), **kwargs))
    repo.commit("grant alice")
    return rel, password


def extend(repo: AccessRepo, grant_arg: str, *args: str) -> Result:
    return jitgrant("extend", grant_arg, *args, "--repo", str(repo.root))


def test_extend_adds_an_overlapping_grant_with_the_same_verifier(repo: AccessRepo,
                                                                 config: Path) -> None:
    expires = utc(hours=1)
    rel, password = committed_grant(repo, config, expires=expires, reason="INC-1 first")
    secret = config / "secrets" / "db1" / "jit_alice_readonly"
    before, mtime = head(repo), secret.stat().st_mtime_ns
    result = extend(repo, rel, "--for", "2h")
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert re.fullmatch(r"access/alice/db1-readonly-\d{8}T\d{6}Z-extend", branch)
    assert git(repo.root, "rev-list", "--parents", "-n", "1", branch).split()[1:] == [before]
    path, data = branch_file(repo, branch)
    assert re.fullmatch(r"grants/db1/alice-readonly-\d{8}T\d{6}Z-extend\.yaml", path)
    old = yaml.safe_load((repo.root / rel).read_text())
    assert data["password_verifier"] == old["password_verifier"]
    assert scram_matches(data["password_verifier"], password)
    assert parse_timestamp(str(data["expires"])) == expires + timedelta(hours=2)
    assert data["reason"] == "INC-1 first"
    assert git(repo.root, "ls-tree", "--name-only", branch, rel) == rel  # the old one stays
    assert secret.stat().st_mtime_ns == mtime and stored_password(config) == password
    for text in (result.stdout, result.stderr, git(repo.root, "log", "-p", "--all")):
        assert password not in text
    assert data["password_verifier"] not in result.stdout + result.stderr
    checked = jitgrant("validate", "--repo", str(repo.root), "--rev", branch, "--base", "main",
                       "--pr-author", "alice-gh")
    assert checked.exit_code == 0, checked.stderr


def test_an_expired_grant_is_not_extended(repo: AccessRepo, config: Path) -> None:
    """Its verifier would bring a dead password back: a leaked one dies with its grant."""
    rel, _ = committed_grant(repo, config, starts=utc(hours=-3), expires=utc(minutes=-1))
    before = objects(repo)
    result = extend(repo, str(repo.root / rel), "--for", "1h", "--reason", "INC-3 again")
    assert_one_line_error(result, f"{rel} expired at ", "its password died with it",
                          "jitgrant request db1 readonly --for DURATION --reason TEXT")
    assert branches(repo) == ["main"] and objects(repo) == before


def test_extending_an_active_grant_counts_from_its_expiry(repo: AccessRepo,
                                                          config: Path) -> None:
    expires = utc(minutes=5)
    rel, _ = committed_grant(repo, config, starts=utc(hours=-3), expires=expires)
    result = extend(repo, rel, "--for", "1h", "--reason", "INC-3 more")
    assert result.exit_code == 0, result.stderr
    _, data = branch_file(repo, new_branch(repo))
    assert parse_timestamp(str(data["expires"])) == expires + timedelta(hours=1)
    assert data["reason"] == "INC-3 more" and "starts" not in data


def test_extending_a_grant_yet_to_start_keeps_its_start(repo: AccessRepo,
                                                        config: Path) -> None:
    starts, expires = utc(hours=1), utc(hours=2)
    rel, _ = committed_grant(repo, config, starts=starts, expires=expires)
    assert extend(repo, rel, "--for", "1h").exit_code == 0
    _, data = branch_file(repo, new_branch(repo))
    assert parse_timestamp(str(data["starts"])) == starts
    assert parse_timestamp(str(data["expires"])) == expires + timedelta(hours=1)


@pytest.mark.parametrize(("arg", "args", "fragments"), [
    ("grants/db1/alice-old.yaml", ["--for", "8h"],
     ["the extension until", "over the 8h allowed for 'readonly'"]),
    ("grants/db1/alice-old.yaml", ["--for", "999999w"], ["is past the year 9999"]),
    ("grants/db1/missing.yaml", ["--for", "1h"], ["no such grant file at HEAD"]),
    ("policies/main.yaml", ["--for", "1h"], ["is not a grant file"]),
    ("../outside/grants/db1/x.yaml", ["--for", "1h"], ["is not inside the repository"]),
])
def test_extend_refusals_write_nothing(repo: AccessRepo, config: Path, arg: str,
                                       args: list[str], fragments: list[str]) -> None:
    committed_grant(repo, config, expires=utc(hours=1))
    before = objects(repo)
    assert_one_line_error(extend(repo, arg, *args), *fragments)
    assert branches(repo) == ["main"] and objects(repo) == before


def test_an_extension_over_the_limit_says_the_most_that_can_be_added(repo: AccessRepo,
                                                                    config: Path) -> None:
    """readonly allows 8h; a grant ending in 1h0m30s can take 6h59m30s more, not 8h."""
    rel, _ = committed_grant(repo, config, expires=utc(hours=1, seconds=30))
    result = extend(repo, rel, "--for", "8h")
    assert_one_line_error(result, "over the 8h allowed for 'readonly'", "at most 6h59m can be "
                          "added (--for 419m)")
    assert branches(repo) == ["main"]
    assert extend(repo, rel, "--for", "419m").exit_code == 0


def test_an_extension_with_no_room_left_says_so(repo: AccessRepo, config: Path) -> None:
    rel, _ = committed_grant(repo, config, expires=utc(hours=8))
    assert_one_line_error(extend(repo, rel, "--for", "1h30m"), "nothing can be added")


def test_extending_someone_elses_grant_needs_the_right(repo: AccessRepo, config: Path) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    repo.commit("bob's grant")
    assert_one_line_error(extend(repo, "grants/db1/bob.yaml", "--for", "1h"),
                          "alice may not ask for bob")
    assert branches(repo) == ["main"]


@pytest.mark.parametrize("bob_has_a_password", [True, False])
def test_extend_as_someone_else_keeps_their_verifier_never_mine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path,
        bob_has_a_password: bool) -> None:
    """Issue 12, finding 8: `extend --as` copies the grantee's grant's verifier (or none), so
    alice never holds the password of bob's login."""
    repo = make_repo(tmp_path / "r", monkeypatch, requesters_for_others=["@alice-gh"])
    mine = scram_sha256_verifier(new_password())
    bobs = scram_sha256_verifier(new_password()) if bob_has_a_password else None
    repo.write("grants/db1/alice.yaml", grant("alice", verifier=mine))
    repo.write("grants/db1/bob.yaml", grant("bob", verifier=bobs))
    repo.commit("grants")
    result = extend(repo, "grants/db1/bob.yaml", "--for", "1h", "--as", "bob")
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    _, data = branch_file(repo, branch)
    assert data["grantee"] == "bob" and data.get("password_verifier") == bobs
    assert not (config / "secrets").exists()
    checked = jitgrant("validate", "--repo", str(repo.root), "--rev", branch, "--base", "main",
                       "--pr-author", "alice-gh")
    assert checked.exit_code == 0, checked.stderr


@pytest.mark.parametrize(("command", "handle", "fragment"), [
    ("extend", "alice", "grants/db1/bob.yaml is bob's grant, not alice's"),
    ("revoke", "alice", "grants/db1/bob.yaml is bob's grant, not alice's"),
    ("extend", "nobody", "--as 'nobody': no such person"),
    ("revoke", "nobody", "--as 'nobody': no such person"),
])
def test_extend_and_revoke_as_must_name_the_grantee(repo: AccessRepo, config: Path,
                                                    command: str, handle: str,
                                                    fragment: str) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    repo.commit("bob's grant")
    extra = ["--for", "1h"] if command == "extend" else []
    result = jitgrant(command, "grants/db1/bob.yaml", *extra, "--as", handle,
                      "--repo", str(repo.root))
    assert_one_line_error(result, fragment)
    assert branches(repo) == ["main"]


def test_extend_as_someone_else_needs_the_right(repo: AccessRepo, config: Path) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    repo.commit("bob's grant")
    assert_one_line_error(extend(repo, "grants/db1/bob.yaml", "--for", "1h", "--as", "bob"),
                          "alice may not ask for bob")


def test_revoke_as_the_grantee(repo: AccessRepo, config: Path) -> None:
    repo.write("grants/db1/bob.yaml", grant("bob"))
    repo.commit("bob's grant")
    result = jitgrant("revoke", "grants/db1/bob.yaml", "--as", "bob", "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    assert new_branch(repo).startswith("access/bob/db1-readonly-")


# -- revoke ----------------------------------------------------------------------------------


def test_revoke_removes_the_file_on_a_new_branch(repo: AccessRepo, config: Path) -> None:
    rel, password = committed_grant(repo, config)
    before = head(repo)
    result = jitgrant("revoke", rel, "--reason", "done early", "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert re.fullmatch(r"access/alice/db1-readonly-\d{8}T\d{6}Z-revoke", branch)
    assert git(repo.root, "rev-list", "--parents", "-n", "1", branch).split()[1:] == [before]
    assert git(repo.root, "diff", "--name-status", before, branch) == f"D\t{rel}"
    assert "done early" in git(repo.root, "log", "-1", "--format=%B", branch)
    assert (repo.root / rel).exists() and head(repo) == before  # the checkout is untouched
    assert stored_password(config) == password  # useless once revoked; not ours to delete
    assert result.stderr == ""


def test_revoke_names_the_grants_that_keep_the_login_alive(repo: AccessRepo,
                                                           config: Path) -> None:
    rel, _ = committed_grant(repo, config)
    repo.write("grants/db1/alice-later.yaml", grant(expires=utc(hours=5)))
    repo.write("grants/db1/alice-past.yaml", grant(starts=utc(hours=-3), expires=utc(hours=-1)))
    repo.commit("more grants")
    result = jitgrant("revoke", rel, "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    notes = result.stderr.splitlines()
    assert len(notes) == 1 and "grants/db1/alice-later.yaml also grants readonly" in notes[0]


def test_revoke_also_takes_an_invalid_grant_file_away(repo: AccessRepo, config: Path) -> None:
    repo.write("grants/db1/broken.yaml", "grantee: [\n")
    repo.commit("broken")
    result = jitgrant("revoke", "grants/db1/broken.yaml", "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"access/revoke/db1-\d{8}T\d{6}Z", new_branch(repo))


def test_revoke_refuses_a_dirty_tree_and_a_missing_file(repo: AccessRepo, config: Path) -> None:
    rel, _ = committed_grant(repo, config)
    assert_one_line_error(jitgrant("revoke", "grants/db1/nope.yaml", "--repo", str(repo.root)),
                          "no such grant file at HEAD")
    (repo.root / rel).unlink()
    assert_one_line_error(jitgrant("revoke", rel, "--repo", str(repo.root)),
                          "uncommitted changes")
    assert branches(repo) == ["main"]


def test_request_extend_revoke_round_trip_through_merges(repo: AccessRepo,
                                                         config: Path) -> None:
    assert request(repo, "--for", "1h").exit_code == 0
    first = new_branch(repo)
    path, _ = branch_file(repo, first)
    merge(repo, first)
    git(repo.root, "branch", "-D", first)
    assert extend(repo, path, "--for", "1h").exit_code == 0
    second = new_branch(repo)
    extension, data = branch_file(repo, second)
    merge(repo, second)
    git(repo.root, "branch", "-D", second)
    assert scram_matches(data["password_verifier"], stored_password(config))
    for rel in (path, extension):
        assert jitgrant("revoke", rel, "--repo", str(repo.root)).exit_code == 0
        merge(repo, new_branch(repo))
        git(repo.root, "branch", "-D", new_branch(repo))
    assert not list((repo.root / "grants" / "db1").glob("*.yaml"))


def test_the_commit_is_signed_when_git_would_sign_it(repo: AccessRepo, config: Path,
                                                     tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("no ssh-keygen to make a signing key")
    key = tmp_path / "signing"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "signing.pub").read_text()
    (tmp_path / "allowed").write_text(f"alice@example.com {public}")
    for name, value in (("gpg.format", "ssh"), ("user.signingkey", str(key)),
                        ("commit.gpgsign", "true"),
                        ("gpg.ssh.allowedSignersFile", str(tmp_path / "allowed"))):
        git(repo.root, "config", name, value)
    assert request(repo).exit_code == 0
    assert git(repo.root, "log", "-1", "--format=%G?", new_branch(repo)) == "G"


def test_identify_for_the_other_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         config: Path) -> None:
    """The helper `status` and `connect` share: who am I, and may I act for someone else."""
    repo = make_repo(tmp_path / "r", monkeypatch, requesters_for_others=["@alice-gh"])
    pol = policy(requesters_for_others=["@alice-gh"])
    repo_policy = load_policy([SourceFile("policies/main.yaml",
                                          yaml.safe_dump(pol).encode())], [])
    assert identify(repo.root, repo_policy) == "alice"
    assert identify(repo.root, repo_policy, "alice") == "alice"
    assert identify(repo.root, repo_policy, "bob", target="db1") == "bob"
    with pytest.raises(UserError, match="alice may not ask for bob"):
        identify(repo.root, repo_policy, "bob")  # no target: no right to act for others
    with pytest.raises(UserError, match="no such person"):
        identify(repo.root, repo_policy, "zed", target="db1")
    git(repo.root, "config", "user.email", "nobody@example.com")
    with pytest.raises(UserError, match="who are you"):
        identify(repo.root, repo_policy)


# -- the local password store: real folders of your own, nothing chmod-ed above them ----------


@pytest.mark.parametrize("where", ["secrets", "secrets/db1"])
def test_a_symlinked_store_folder_is_refused_and_nothing_is_written(
        repo: AccessRepo, config: Path, tmp_path: Path, where: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (elsewhere / "db1").mkdir(mode=0o755)
    (config / where).parent.mkdir(parents=True, exist_ok=True)
    (config / where).symlink_to(elsewhere / "db1" if where == "secrets/db1" else elsewhere)
    before = objects(repo)
    assert_one_line_error(request(repo), f"{config / where}: is a symlink",
                          "real folders of your own")
    assert branches(repo) == ["main"] and objects(repo) == before
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755  # not chmod-ed through the link
    assert stat.S_IMODE((elsewhere / "db1").stat().st_mode) == 0o755
    assert [p.name for p in elsewhere.rglob("*")] == ["db1"]  # no password written there


def test_a_plain_file_where_the_target_folder_goes_is_one_line(repo: AccessRepo,
                                                              config: Path) -> None:
    (config / "secrets").mkdir(parents=True, mode=0o700)
    (config / "secrets" / "db1").write_text("not a folder\n")
    before = objects(repo)
    assert_one_line_error(request(repo), f"{config / 'secrets' / 'db1'}: is not a folder")
    assert branches(repo) == ["main"] and objects(repo) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder away needs root")
def test_a_store_folder_someone_else_owns_is_refused(repo: AccessRepo, config: Path) -> None:
    (config / "secrets" / "db1").mkdir(parents=True, mode=0o700)
    os.chown(config / "secrets" / "db1", 65534, 65534)
    assert_one_line_error(request(repo), f"{config / 'secrets' / 'db1'}: belongs to uid 65534")
    assert branches(repo) == ["main"]
    assert list((config / "secrets" / "db1").iterdir()) == []


def test_the_config_folder_itself_is_never_chmod_ed(repo: AccessRepo, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"  # like /tmp: world-writable and sticky
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(shared))
    result = request(repo)
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "secrets" / "db1" / "jit_alice_readonly").stat().st_mode) \
        == 0o600


def test_missing_folders_are_made_0700_whatever_the_umask(
        repo: AccessRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(home / ".config" / "jitgrant"))
    old = os.umask(0)
    try:
        result = request(repo)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    made = [home / ".config", home / ".config" / "jitgrant"]
    made += [made[1] / "secrets", made[1] / "secrets" / "db1"]
    assert {str(p): stat.S_IMODE(p.stat().st_mode) for p in made} == \
        {str(p): 0o700 for p in made}
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # existed: left alone
    assert stat.S_IMODE((made[3] / "jit_alice_readonly").stat().st_mode) == 0o600


def test_a_symlink_in_place_of_the_password_file_is_replaced_not_followed(
        repo: AccessRepo, config: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (config / "secrets" / "db1").mkdir(parents=True, mode=0o700)
    (config / "secrets" / "db1" / "jit_alice_readonly").symlink_to(victim)
    result = request(repo)
    assert result.exit_code == 0, result.stderr
    assert victim.read_text() == "precious\n"
    secret = config / "secrets" / "db1" / "jit_alice_readonly"
    assert not secret.is_symlink() and stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_who_you_are_is_the_author_git_would_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """git var GIT_AUTHOR_IDENT: author.email beats user.email, and $EMAIL counts when
    neither is set, as for `git commit`."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # none of this machine's settings
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("EMAIL", raising=False)
    repo = make_repo(tmp_path / "r", monkeypatch)  # user.email alice
    git(repo.root, "config", "author.email", "Bob@Example.com")
    pol = load_policy([SourceFile("policies/main.yaml", yaml.safe_dump(policy()).encode())], [])
    assert identify(repo.root, pol) == "bob"
    git(repo.root, "config", "--unset", "author.email")
    git(repo.root, "config", "--unset", "user.email")
    git(repo.root, "config", "--unset", "user.name")
    monkeypatch.setenv("EMAIL", "carol@example.com")
    assert identify(repo.root, pol) == "carol"
    monkeypatch.setenv("EMAIL", "bob@example.com")
    result = request(repo, "--for", "1h")
    assert result.exit_code == 0, result.stderr
    assert branch_file(repo, new_branch(repo))[1]["grantee"] == "bob"


def test_a_bare_repository_is_one_line(repo: AccessRepo, config: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.root), str(bare))
    for result in (jitgrant("request", "db1", "readonly", "--for", "1h", "--reason", "x",
                            "--repo", str(bare)),
                   jitgrant("revoke", "grants/db1/x.yaml", "--repo", str(bare))):
        assert_one_line_error(result, f"{bare}: a bare repository")
    assert not config.exists()


def test_extending_a_grant_that_ends_in_the_year_9999_is_one_line(repo: AccessRepo,
                                                                  config: Path) -> None:
    rel, _ = committed_grant(repo, config, expires=datetime(9999, 12, 31, 23, 30,
                                                           tzinfo=timezone.utc))
    assert_one_line_error(extend(repo, rel, "--for", "1h"),
                          "1h after 9999-12-31T23:30:00Z is past the year 9999")
    assert branches(repo) == ["main"]


def test_printed_commands_are_safe_to_copy(repo: AccessRepo, config: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """git allows `$(...)` and `;` in a branch name; revoke names the branch of an invalid
    file after its folder. The name is folded to [a-z0-9._-] and every printed command is
    shell-quoted: running the `next:` and gh lines runs git and gh, nothing else."""
    folder = "$(touch${IFS}PWNED);x"  # no space: git refuses those, not these
    repo.write(f"grants/{folder}/bad.yaml", "grantee: [\n")
    repo.commit("a hostile folder name")
    bin_dir = tmp_path / "bin"  # stand-ins that only record what they were given
    bin_dir.mkdir()
    for tool in ("gh", "git"):
        (bin_dir / tool).write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\n')
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "gh-only").mkdir()
    (tmp_path / "gh-only" / "gh").symlink_to(bin_dir / "gh")
    with monkeypatch.context() as patch:
        patch.setenv("PATH", f"{tmp_path / 'gh-only'}{os.pathsep}{os.environ['PATH']}")
        result = jitgrant("revoke", f"grants/{folder}/bad.yaml", "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    branch = new_branch(repo)
    assert re.fullmatch(r"access/revoke/--touch--ifs-pwned--x-\d{8}T\d{6}Z", branch)
    lines = result.stdout.splitlines()
    push = next(line for line in lines if line.startswith("next: ")).removeprefix("next: ")
    gh = result.stdout[result.stdout.index("      gh "):]  # the last, quoted body and all
    for command in (push, gh):
        subprocess.run(["sh", "-c", command], cwd=tmp_path, check=True,
                       env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert (bin_dir / "git.args").read_text().splitlines() == ["push", "-u", "origin", branch]
    assert (bin_dir / "gh.args").read_text().splitlines()[:4] == ["pr", "create", "--head",
                                                                  branch]
    assert not (tmp_path / "PWNED").exists() and not (repo.root / "PWNED").exists()
