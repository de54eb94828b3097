"""`jitgrant plan --offline`: no database, from the grants at a commit alone."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.cli.conftest import JITGRANT_BIN, jitgrant
from tests.helpers import AccessRepo, grant, policy, utc

HOSTILE_REASON = "a | b | `c` <img src=x onerror=alert(1)> [x](http://evil) **bold** # h\\"


def offline(repo: AccessRepo, *args: str):  # type: ignore[no-untyped-def]
    return jitgrant("plan", "--offline", "--repo", str(repo.root), *args)


def test_changes_exit_2_and_are_listed(repo: AccessRepo) -> None:
    expires = utc(hours=2)
    repo.write("grants/db1/alice.yaml", grant(expires=expires))
    repo.commit("grant")
    result = offline(repo)
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "target db1 (postgres): 1 change"
    assert lines[1] == (f"  + create jit_alice_readonly for alice (readonly) until "
                        f"{expires:%Y-%m-%dT%H:%M:%SZ} [granted]")
    assert lines[2].startswith('      CREATE ROLE "jit_alice_readonly" WITH LOGIN')
    assert result.stderr == ""


def test_nothing_to_do_exits_0(repo: AccessRepo) -> None:
    result = offline(repo)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "target db1 (postgres): in sync"


def test_expired_and_future_grants_exit_0(repo: AccessRepo) -> None:
    repo.write("grants/db1/later.yaml", grant(starts=utc(hours=1), expires=utc(hours=3)))
    repo.commit("grant that starts later")
    assert offline(repo).exit_code == 0


def test_invalid_grant_exits_1_but_the_rest_is_still_planned(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant())
    repo.write("grants/db1/bad.yaml", grant(grantee="bob", access="nope"))
    repo.commit("one good, one bad")
    result = offline(repo)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "grants/db1/bad.yaml:3: access: unknown access level 'nope'"]
    assert "+ create jit_alice_readonly" in result.stdout


def test_plan_reads_head_and_ignores_the_working_tree(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant())
    repo.commit("grant")
    repo.write("grants/db1/alice.yaml", grant(access="readwrite", reason="uncommitted edit"))
    repo.write("grants/db1/bob.yaml", grant(grantee="bob"))
    repo.write("policies/main.yaml", "this: [is not valid\n")
    result = offline(repo)
    assert result.exit_code == 2, result.output
    assert "jit_alice_readonly" in result.stdout
    assert "readwrite" not in result.stdout and "bob" not in result.stdout
    (repo.root / "grants/db1/alice.yaml").unlink()
    assert offline(repo).stdout == result.stdout


def test_plan_from_an_earlier_rev(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant())
    first = repo.commit("grant")
    repo.remove("grants/db1/alice.yaml")
    repo.commit("remove it")
    assert offline(repo).exit_code == 0
    assert offline(repo, "--rev", first).exit_code == 2


def test_json_format(repo: AccessRepo) -> None:
    password = new_password()
    verifier = scram_sha256_verifier(password)
    repo.write("grants/db1/alice.yaml", grant(verifier=verifier))
    commit = repo.commit("grant")
    result = offline(repo, "--format", "json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["commit"] == commit and data["problems"] == []
    [target] = data["targets"]
    assert (target["target"], target["engine"], target["status"]) == ("db1", "postgres", "ok")
    [action] = target["actions"]
    assert {k: action[k] for k in ("action", "login", "cause", "grantee", "access", "status")} == {
        "action": "create", "login": "jit_alice_readonly", "cause": "granted",
        "grantee": "alice", "access": "readonly", "status": "planned"}
    assert action["grant_files"] == ["grants/db1/alice.yaml"]
    assert any("PASSWORD '********'" in s for s in action["statements"])
    assert verifier not in result.output and password not in result.output


def test_markdown_format_escapes_what_came_from_grant_files(repo: AccessRepo) -> None:
    password = new_password()
    verifier = scram_sha256_verifier(password)
    repo.write("grants/db1/alice.yaml", grant(verifier=verifier, reason=HOSTILE_REASON))
    bad = grant(grantee="bob", reason=HOSTILE_REASON)
    bad["x|y`<b>"] = HOSTILE_REASON
    repo.write("grants/db1/bad.yaml", bad)
    repo.commit("grants")
    result = offline(repo, "--format", "markdown")
    assert result.exit_code == 1
    out = result.stdout
    assert verifier not in out and password not in out
    assert HOSTILE_REASON not in out
    assert "<img" not in out and "<b>" not in out
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len(rows) == 3  # header, separator, one action
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 8, row
    assert "jit\\_alice\\_readonly" in out or "`jit_alice_readonly`" in out
    problem = [line for line in out.splitlines() if "unknown key" in line]
    assert len(problem) == 1 and "x\\|y\\`\\<b\\>" in problem[0]


def test_markdown_of_an_empty_plan(repo: AccessRepo) -> None:
    result = offline(repo, "--format", "markdown")
    assert result.exit_code == 0
    assert "In sync: nothing to do." in result.stdout


def test_markdown_problem_paths_cannot_break_out(repo: AccessRepo) -> None:
    repo.write("grants/db1/x` **pwned** [click](https:evil) `.yaml", grant(access="nope"))
    repo.commit("hostile name")
    out = offline(repo, "--format", "markdown").stdout
    [line] = [line for line in out.splitlines() if "pwned" in line]
    # What is left once code spans (CommonMark: matching runs of backticks) are taken out
    # is live markdown: the file name must not be in it unescaped.
    live = re.sub(r"(`+)(.+?)(?<!`)\1(?!`)", "", line)
    assert "**pwned**" not in live and "[click](" not in live


def test_target_option(repo: AccessRepo) -> None:
    repo.write("grants/db1/alice.yaml", grant())
    repo.commit("grant")
    assert offline(repo, "--target", "db1").exit_code == 2
    result = offline(repo, "--target", "db9")
    assert result.exit_code == 1
    assert result.stderr == "jitgrant: error: unknown target 'db9' (targets: db1)\n"
    assert result.stdout == ""


def test_environment_option(repo: AccessRepo) -> None:
    doc = policy()
    doc["targets"]["stg1"] = {**doc["targets"]["db1"], "environment": "staging"}
    repo.write("policies/main.yaml", doc)
    repo.write("grants/db1/alice.yaml", grant())
    repo.write("grants/stg1/alice.yaml", grant(target="stg1"))
    repo.commit("a staging target")
    staging = offline(repo, "--environment", "staging")
    assert staging.exit_code == 2, staging.output
    assert staging.stdout.startswith("target stg1 (postgres): 1 change")
    assert "target db1" not in staging.stdout
    both = offline(repo, "--environment", "staging", "--environment", "prod*", "-j", "1")
    assert [line for line in both.stdout.splitlines() if line.startswith("target ")] == [
        "target db1 (postgres): 1 change", "target stg1 (postgres): 1 change"]
    result = offline(repo, "--environment", "qa")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("jitgrant: error: no target is in environment 'qa' "
                             "(environments: production, staging)\n")
    assert offline(repo, "--jobs", "0").exit_code == 1  # at least one


def test_verifier_never_appears_in_text_output(repo: AccessRepo) -> None:
    password = new_password()
    verifier = scram_sha256_verifier(password)
    repo.write("grants/db1/alice.yaml", grant(verifier=verifier))
    repo.commit("grant")
    result = offline(repo)
    assert "PASSWORD '********'" in result.stdout
    assert verifier not in result.output and password not in result.output


@pytest.mark.parametrize("args", [
    ["plan", "--repo", "{missing}"],
    ["validate", "--repo", "{plain}"],
    ["apply", "--repo", "{plain}"],
    ["plan", "--repo", "{repo}", "--rev", "no-such-ref"],
    ["validate", "--repo", "{repo}", "--base", "no-such-ref"],
])
def test_user_error_is_one_line_and_exit_1(repo: AccessRepo, tmp_path: Path,
                                           args: list[str]) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    paths = {"missing": str(tmp_path / "missing"), "plain": str(plain), "repo": str(repo.root)}
    result = jitgrant(*(a.format(**paths) for a in args))
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("jitgrant: error: ")
    assert "Traceback" not in result.stderr


def test_user_error_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    proc = subprocess.run([JITGRANT_BIN, "plan", "--offline", "--repo", str(plain)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == f"jitgrant: error: {plain}: not a git repository (use --repo)\n"


def test_empty_repository_without_commits_is_a_user_error(tmp_path: Path) -> None:
    empty = AccessRepo(tmp_path / "empty")
    result = jitgrant("plan", "--offline", "--repo", str(empty.root))
    assert result.exit_code == 1
    assert result.stderr == "jitgrant: error: unknown revision 'HEAD'\n"


def test_unknown_option_is_a_one_line_user_error(repo: AccessRepo) -> None:
    result = jitgrant("plan", "--offline", "--repo", str(repo.root), "--fromat", "json")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1


def test_the_grant_files_of_people_who_left_are_one_line_with_a_count(repo: AccessRepo) -> None:
    """Issue 12, finding 4: after an offboarding, every scheduled run would repeat one
    warning per file; plan and apply say it once, with a count (validate lists them)."""
    for name in ("carol-1", "carol-2", "carol-3"):
        repo.write(f"grants/db1/{name}.yaml", grant(grantee="carol"))
    repo.write("grants/db1/bad.yaml", grant(access="nope"))
    repo.commit("carol's grants, and a bad one")
    result = offline(repo)
    assert result.stderr.splitlines() == [
        "grants/db1/bad.yaml:3: access: unknown access level 'nope'",
        "warning: 3 grant files are inactive (the grantee left) and can be deleted: "
        "`jitgrant validate` lists them",
    ]
    listed = jitgrant("validate", "--repo", str(repo.root))
    assert listed.stderr.count("the file can be deleted") == 3
