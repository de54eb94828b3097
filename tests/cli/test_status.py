"""`jitgrant status` on a real access repository (branches, remote-tracking refs, a real
PostgreSQL for the login column), and the ways `jitgrant connect` refuses before it starts a
client."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler import secretstore
from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.load import MAX_FILE_BYTES
from tests.cli.conftest import Namespace, jitgrant
from tests.helpers import AccessRepo, git, grant, policy, stamp, utc

CONNECT = {"host": "127.0.0.1", "port": 5432, "dbname": "postgres"}


@pytest.fixture(autouse=True)
def _config_dir(config_dir: Path) -> Path:
    return config_dir


def past_commit(repo: AccessRepo, when: datetime, message: str) -> None:
    """Commit as if at `when`: a grant's lifetime counts from its commit."""
    date = stamp(when)
    repo.commit(message, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)


def status(repo: AccessRepo, *args: str, env: dict[str, Any] | None = None) -> dict[str, Any]:
    result = jitgrant("status", "--repo", str(repo.root), "--format", "json", *args, env=env)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def states(data: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    """(file, branch) -> state."""
    return {(g["file"], g["branch"]): g["state"] for g in data["grants"]}


@pytest.fixture
def repo(tmp_path: Path) -> AccessRepo:
    """Grants in every state on main, and requests on a local and a remote-tracking branch."""
    r = AccessRepo(tmp_path / "repo")
    r.write("policies/main.yaml", policy(connect=CONNECT))
    past_commit(r, utc(hours=-30), "policy")
    r.write("grants/db1/old.yaml", grant(expires=utc(hours=-1), starts=utc(hours=-5)))
    past_commit(r, utc(hours=-6), "an old grant")
    r.write("grants/db1/active.yaml", grant(expires=utc(hours=3),
                                            verifier=scram_sha256_verifier(new_password())))
    r.write("grants/db1/soon.yaml", grant(grantee="bob", expires=utc(minutes=20)))
    r.write("grants/db1/later.yaml", grant(grantee="bob", starts=utc(hours=1),
                                           expires=utc(hours=3)))
    r.write("grants/db1/bad.yaml", grant(expires=utc(hours=20)))  # over max_duration
    r.commit("grants")
    git(r.root, "branch", "access/alice-readwrite")
    r.write("grants/db1/asked.yaml", grant(access="readwrite", expires=utc(hours=2)))
    r.commit("request")  # on main, then moved to the branch
    git(r.root, "branch", "-f", "access/alice-readwrite", "HEAD")
    git(r.root, "reset", "-q", "--hard", "HEAD~1")
    r.write("grants/db1/soon.yaml", grant(grantee="bob", expires=utc(hours=4)))
    r.remove("grants/db1/later.yaml")
    r.commit("bob extends one grant and drops another")
    sha = git(r.root, "rev-parse", "HEAD")
    git(r.root, "update-ref", "refs/remotes/origin/access/bob-extend", sha)
    git(r.root, "reset", "-q", "--hard", "HEAD~1")
    git(r.root, "update-ref", "refs/remotes/origin/main", "HEAD")  # the mainline's copy
    git(r.root, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    git(r.root, "branch", "merged-already", "HEAD")  # nothing pending there
    return r


def test_every_state(repo: AccessRepo) -> None:
    data = status(repo)
    assert data["base"] == "main"
    assert states(data) == {
        ("grants/db1/active.yaml", None): "active",
        ("grants/db1/soon.yaml", None): "expiring",
        ("grants/db1/later.yaml", None): "scheduled",
        ("grants/db1/old.yaml", None): "expired",
        ("grants/db1/bad.yaml", None): "invalid",
        ("grants/db1/asked.yaml", "access/alice-readwrite"): "pending",
        ("grants/db1/soon.yaml", "origin/access/bob-extend"): "pending",
        ("grants/db1/later.yaml", "origin/access/bob-extend"): "pending",
    }
    by_file = {(g["file"], g["branch"]): g for g in data["grants"]}
    active = by_file["grants/db1/active.yaml", None]
    assert active["login"] == "jit_alice_readonly"
    assert 3 * 3600 - 120 < active["seconds_left"] <= 3 * 3600
    assert active["login_exists"] is None  # no DSN: not known
    assert by_file["grants/db1/asked.yaml", "access/alice-readwrite"]["change"] == "new"
    assert by_file["grants/db1/soon.yaml", "origin/access/bob-extend"]["change"] == "change"
    assert by_file["grants/db1/later.yaml", "origin/access/bob-extend"]["change"] == "removal"
    assert "8h allowed" in by_file["grants/db1/bad.yaml", None]["problem"]
    assert [g["state"] for g in data["grants"]][:3] == ["expiring", "active", "scheduled"]


def test_the_table(repo: AccessRepo) -> None:
    result = jitgrant("status", "--repo", str(repo.root))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["STATE", "GRANTEE", "TARGET", "ACCESS"]
    active = next(line for line in lines if "active.yaml" in line)
    assert active.startswith("active") and "2h5" in active and " left" in active
    assert any(line.startswith("pending") and "new on access/alice-readwrite" in line
               for line in lines)
    scheduled = next(line for line in lines if line.startswith("scheduled"))
    assert "starts in 59m" in scheduled or "starts in 1h" in scheduled


def test_a_squash_merged_request_is_no_longer_pending(repo: AccessRepo) -> None:
    blob = git(repo.root, "rev-parse", "access/alice-readwrite:grants/db1/asked.yaml")
    repo.write("grants/db1/asked.yaml", git(repo.root, "cat-file", "-p", blob) + "\n")
    repo.commit("Request alice readwrite (#7)")  # the same file, a different commit
    data = status(repo)
    assert states(data)["grants/db1/asked.yaml", None] == "active"
    assert ("grants/db1/asked.yaml", "access/alice-readwrite") not in states(data)


def test_a_stale_main_is_a_note(repo: AccessRepo) -> None:
    repo.write("grants/db1/merged.yaml", grant(grantee="bob", expires=utc(hours=1)))
    repo.commit("merged on the remote")
    git(repo.root, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo.root, "reset", "-q", "--hard", "HEAD~1")
    result = jitgrant("status", "--repo", str(repo.root))
    assert result.exit_code == 0
    assert "merged.yaml" not in result.stdout
    assert result.stderr == ("note: origin/main has commits that main lacks: pull to see the "
                             "grants merged there\n")


def test_head_on_a_request_branch_reads_grants_from_main(repo: AccessRepo) -> None:
    git(repo.root, "checkout", "-q", "access/alice-readwrite")
    data = status(repo)
    assert data["base"] == "main"
    assert states(data)["grants/db1/asked.yaml", "access/alice-readwrite"] == "pending"
    assert ("grants/db1/asked.yaml", None) not in states(data)


def test_me_is_the_git_email(repo: AccessRepo) -> None:
    git(repo.root, "config", "user.email", "Bob@Example.com")
    data = status(repo, "--me", env={"GIT_AUTHOR_EMAIL": None})
    assert data["person"] == "bob"
    assert {g["grantee"] for g in data["grants"]} == {"bob"}
    assert len(data["grants"]) == 4
    alice = status(repo, "--as", "alice")
    assert {g["grantee"] for g in alice["grants"]} == {"alice"}


def test_me_unknown_is_one_line(repo: AccessRepo) -> None:
    result = jitgrant("status", "--repo", str(repo.root), "--me",
                      env={"GIT_AUTHOR_EMAIL": "nobody@example.com"})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jitgrant: error: ")
    assert "nobody@example.com" in lines[0] and "--as" in lines[0]


def test_old_expired_grants_only_with_all(tmp_path: Path) -> None:
    r = AccessRepo(tmp_path / "r")
    r.write("policies/main.yaml", policy())
    past_commit(r, utc(days=-30), "policy")
    r.write("grants/db1/ancient.yaml", grant(expires=utc(days=-20), starts=utc(days=-20, hours=-2)))
    past_commit(r, utc(days=-21), "old")
    assert status(r)["grants"] == [] and status(r)["hidden_expired"] == 1
    assert [g["state"] for g in status(r, "--all")["grants"]] == ["expired"]
    result = jitgrant("status", "--repo", str(r.root))
    assert result.stdout.strip() == "no grants"
    assert "1 grants that ended over 7 days ago not shown" in result.stderr


def test_login_exists_on_the_server(pg_repo: AccessRepo, namespace: Namespace) -> None:
    pg_repo.write("grants/db1/now.yaml", grant(expires=utc(hours=2)))
    pg_repo.write("grants/db1/later.yaml", grant(grantee="bob", starts=utc(hours=1),
                                                 expires=utc(hours=2)))
    pg_repo.commit("grants")
    applied = jitgrant("apply", "--repo", str(pg_repo.root), "--no-commit", env=namespace.env)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    data = status(pg_repo, env=namespace.env)
    exists = {g["login"]: g["login_exists"] for g in data["grants"]}
    assert exists == {namespace.login("alice"): True, namespace.login("bob"): False}
    table = jitgrant("status", "--repo", str(pg_repo.root), env=namespace.env).stdout
    assert any(line.startswith("active") and "  yes  " in line for line in table.splitlines())


def test_a_server_that_is_down_is_a_note(pg_repo: AccessRepo, namespace: Namespace) -> None:
    pg_repo.write("grants/db1/now.yaml", grant(expires=utc(hours=2)))
    pg_repo.commit("grant")
    env = {namespace.dsn_env: "postgresql://nobody@127.0.0.1:1/postgres?connect_timeout=2"}
    result = jitgrant("status", "--repo", str(pg_repo.root), env=env)
    assert result.exit_code == 0
    assert "active" in result.stdout
    assert result.stderr.startswith("note: db1: could not check the logins: cannot connect")
    data = status(pg_repo, env=env)
    assert data["grants"][0]["login_exists"] is None and len(data["notes"]) == 1


# -- connect: every refusal is one line and exit 1, before any client starts -----------------


def connect(repo: AccessRepo, *args: str, env: dict[str, Any] | None = None) -> Any:
    return jitgrant("connect", "--repo", str(repo.root), *args, env=env)


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jitgrant: error: "), result.stderr
    return str(lines[0])


def test_connect_before_the_grant_starts(repo: AccessRepo) -> None:
    line = one_line_error(connect(repo, "db1", "readonly", "--as", "bob", "--client", "psql"))
    # bob also has soon.yaml, active (and with no verifier): the scheduled one is only
    # reported without it
    assert "grants/db1/soon.yaml carries no password" in line and "jit_bob_readonly" in line
    git(repo.root, "rm", "-q", "grants/db1/soon.yaml")
    repo.commit("drop soon")
    line = one_line_error(connect(repo, "db1", "--as", "bob"))
    assert "your grant for db1 is not active yet: it starts at " in line
    assert "(in 5" in line or "(in 1h" in line


def test_connect_after_expiry_missing_and_pending(repo: AccessRepo) -> None:
    for name in ("active.yaml", "bad.yaml"):
        git(repo.root, "rm", "-q", f"grants/db1/{name}")
    repo.commit("alice's current grants go")
    line = one_line_error(connect(repo, "db1", "readonly", "--as", "alice"))
    assert "your grant for db1 readonly expired at " in line and " ago)" in line
    line = one_line_error(connect(repo, "db1", "readwrite", "--as", "alice"))
    assert "is on branch access/alice-readwrite and not merged yet" in line
    line = one_line_error(connect(repo, "db1", "staging-only", "--as", "alice"))
    assert "you have no grant for db1 staging-only" in line
    line = one_line_error(connect(repo, "nowhere", "--as", "alice"))
    assert "unknown target 'nowhere'" in line
    line = one_line_error(connect(repo, "db1", "--as", "carol"))
    assert "carol is not an active person" in line


def test_connect_with_an_invalid_grant_file(tmp_path: Path) -> None:
    r = AccessRepo(tmp_path / "r")
    r.write("policies/main.yaml", policy())
    r.write("grants/db1/long.yaml", grant(expires=utc(hours=30)))
    r.commit("too long")
    line = one_line_error(connect(r, "db1", "--as", "alice"))
    assert "your grant file is invalid, so it grants nothing" in line and "8h allowed" in line


def test_connect_without_the_secret_or_the_client(repo: AccessRepo, _config_dir: Path) -> None:
    line = one_line_error(connect(repo, "db1", "--as", "alice"))
    assert "no password for jit_alice_readonly on this machine" in line
    assert str(_config_dir / "secrets" / "db1" / "jit_alice_readonly") in line
    secretstore.save("db1", "jit_alice_readonly", "s3cret-not-shown")
    if shutil.which("pgcli") is None:
        line = one_line_error(connect(repo, "db1", "--as", "alice", "--client", "pgcli"))
        assert line == ("jitgrant: error: pgcli is not installed (not on PATH): install it or "
                        "choose another with --client")
    line = one_line_error(connect(repo, "db1", "--as", "alice", "--client", "mariadb"))
    assert "--client mariadb is for mysql targets; this one is postgres" in line


def test_connect_asks_which_level(tmp_path: Path) -> None:
    r = AccessRepo(tmp_path / "r")
    r.write("policies/main.yaml", policy())
    r.write("grants/db1/ro.yaml", grant(expires=utc(hours=2)))
    r.write("grants/db1/rw.yaml", grant(access="readwrite", expires=utc(hours=1)))
    r.commit("two levels")
    line = one_line_error(connect(r, "db1", "--as", "alice"))
    assert "several access levels on db1 now (readonly, readwrite): name one" in line


@pytest.mark.prints_password  # on purpose: the secret scan skips its outputs
def test_print_env_and_pgpass(repo: AccessRepo) -> None:
    password = new_password()
    secretstore.save("db1", "jit_alice_readonly", password)
    result = connect(repo, "db1", "--as", "alice", "--print-env")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# jitgrant: jit_alice_readonly on db1, valid until ")
    assert lines[1:] == ["export PGHOST=127.0.0.1", "export PGPORT=5432",
                         "export PGUSER=jit_alice_readonly", "export PGDATABASE=postgres",
                         f"export PGPASSWORD={password}"]
    assert result.stderr.startswith("warning: the output holds the password")
    assert password not in result.stderr
    result = connect(repo, "db1", "--as", "alice", "--pgpass", "--host", "db.internal",
                     "--port", "6543")
    assert result.stdout.splitlines()[1] == (
        f"db.internal:6543:postgres:jit_alice_readonly:{password}")


def test_a_branch_that_adds_a_target(repo: AccessRepo) -> None:
    """The target exists only on the branch: its pending grant is listed, and no login check
    is tried against a target the mainline does not know."""
    git(repo.root, "checkout", "-q", "-b", "new-target")
    data = policy(connect=CONNECT)
    data["targets"]["db2"] = dict(data["targets"]["db1"], dsn_env="JG_DSN2")
    repo.write("policies/main.yaml", data)
    repo.write("grants/db2/first.yaml", grant(target="db2", expires=utc(hours=1)))
    repo.commit("a new target")
    git(repo.root, "checkout", "-q", "main")
    env = {"JG_DSN2": "postgresql://nobody@127.0.0.1:1/postgres?connect_timeout=1"}
    found = status(repo, env=env)
    assert states(found)["grants/db2/first.yaml", "new-target"] == "pending"
    assert found["notes"] == []


def test_an_oversized_grant_file_on_a_branch_is_reported_not_read(repo: AccessRepo) -> None:
    """A grant file over load.MAX_FILE_BYTES pushed on anyone's branch is never read: its size
    is asked first, as read_tree does for the mainline."""
    huge = dict(grant(expires=utc(hours=2)), reason="x" * (2 * MAX_FILE_BYTES))
    repo.write("grants/db1/huge.yaml", huge)
    sha = repo.commit("a 2 MiB reason")
    git(repo.root, "update-ref", "refs/remotes/origin/access/huge", sha)
    git(repo.root, "reset", "-q", "--hard", "HEAD~1")
    size = int(git(repo.root, "cat-file", "-s", f"{sha}:grants/db1/huge.yaml"))
    (row,) = [g for g in status(repo)["grants"] if g["file"] == "grants/db1/huge.yaml"]
    assert (row["state"], row["branch"]) == ("pending", "origin/access/huge")
    assert row["problem"] == f"file is {size} bytes, over the limit of {MAX_FILE_BYTES}"


# -- the mainline: never a request branch ----------------------------------------------------


def test_a_detached_checkout_of_a_request_is_not_the_mainline(repo: AccessRepo) -> None:
    secretstore.save("db1", "jit_alice_readwrite", new_password())
    git(repo.root, "checkout", "-q", "--detach", "access/alice-readwrite")
    data = status(repo)
    assert data["base"] == "main"
    assert states(data)["grants/db1/asked.yaml", "access/alice-readwrite"] == "pending"
    assert ("grants/db1/asked.yaml", None) not in states(data)
    line = one_line_error(connect(repo, "db1", "readwrite", "--as", "alice", "--print-env"))
    assert "is on branch access/alice-readwrite and not merged yet" in line


def test_without_main_or_master_the_mainline_is_never_a_request(repo: AccessRepo) -> None:
    secretstore.save("db1", "jit_alice_readwrite", new_password())
    git(repo.root, "branch", "-q", "-m", "main", "trunk")
    git(repo.root, "checkout", "-q", "access/alice-readwrite")
    data = status(repo)  # origin/HEAD names the mainline
    assert data["base"] == "origin/main"
    assert states(data)["grants/db1/asked.yaml", "access/alice-readwrite"] == "pending"
    git(repo.root, "symbolic-ref", "--delete", "refs/remotes/origin/HEAD")
    for checkout in (["access/alice-readwrite"], ["--detach", "access/alice-readwrite"]):
        git(repo.root, "checkout", "-q", *checkout)
        for result in (jitgrant("status", "--repo", str(repo.root)),
                       connect(repo, "db1", "readwrite", "--as", "alice", "--print-env")):
            line = one_line_error(result)
            assert "which branch is the mainline?" in line and "--mainline BRANCH" in line
    data = status(repo, "--mainline", "trunk")
    assert data["base"] == "trunk"
    assert states(data)["grants/db1/asked.yaml", "access/alice-readwrite"] == "pending"
    line = one_line_error(connect(repo, "db1", "readwrite", "--as", "alice", "--print-env",
                                  "--mainline", "trunk"))
    assert "not merged yet" in line
    git(repo.root, "checkout", "-q", "--detach", "trunk")  # a branch of its own holds it
    assert status(repo)["base"] == "HEAD"
    git(repo.root, "checkout", "-q", "trunk")
    assert status(repo)["base"] == "trunk"
