"""Break-glass end to end (issue #16, part 3): a break-glass grant merges as an auto-approvable
pull request, `apply` creates its login on the machine's PostgreSQL and marks the create in the
audit record, and `jitgrant audit --break-glass` lists it as unreviewed until a code owner's
review record lands after the merge. A team named in CODEOWNERS is asked of a local stand-in
for GitHub's REST API (tests/forge_stub.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.break_glass import BreakGlassRepo, break_glass_policy, record
from tests.cli.conftest import Namespace, jitgrant
from tests.cli.test_auto_approve import Gh, expected_writes
from tests.forge_stub import fake_github
from tests.helpers import git, grant, utc

GRANT = "grants/db1/alice-bg.yaml"


def break_glass(world: BreakGlassRepo, *extra: str, env: dict[str, str] | None = None
                ) -> Result:
    return jitgrant("audit", "--repo", str(world.root), "--break-glass", *extra, env=env)


def listed(world: BreakGlassRepo, *extra: str) -> list[dict[str, Any]]:
    result = break_glass(world, "--format", "json", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def needs_review(world: BreakGlassRepo) -> list[dict[str, Any]]:
    """What `jitgrant queue` lists as break-glass access waiting for its review (no forge, no
    remote: the repository's own main is the base)."""
    result = jitgrant("queue", "--repo", str(world.root), "--base", "main", "--no-fetch",
                      "--no-forge", "--format", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    return [i for i in json.loads(result.stdout)["items"] if i["kind"] == "break-glass"]


def test_a_break_glass_grant_is_applied_and_unreviewed_until_the_follow_up_lands(
        tmp_path: Path, namespace: Namespace) -> None:
    world = BreakGlassRepo(tmp_path / "repo", namespace.policy(
        requesters_for_others=["@dave-gh"]))
    # the pull request: break-glass grants alone are auto-approvable (alice is in sre)
    git(world.root, "checkout", "-q", "-b", "ask", "main")
    world.repo.write(GRANT, grant("alice", access="breakglass", expires=utc(minutes=50),
                                  reason="INC-9 orders stuck"))
    world.repo.commit("alice breaks the glass")
    result = jitgrant("validate", "--repo", str(world.root), "--base", "main",
                      "--auto-approvable")
    assert result.exit_code == 0, result.stdout + result.stderr
    git(world.root, "checkout", "-q", "main")
    git(world.root, "branch", "-q", "-D", "ask")
    commit, merge = world.request()
    world.repo.write("grants/db1/bob.yaml", grant("bob"))  # an ordinary grant beside it
    world.repo.commit("bob asks")

    applied = jitgrant("apply", "--repo", str(world.root), env=namespace.env)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    login = namespace.login("alice", "breakglass")
    role = namespace.role(login)
    assert role is not None and role["rolcanlogin"] and namespace.group in role["member_of"]
    [rel] = git(world.root, "show", "--name-only", "--format=", "HEAD").splitlines()
    actions = {a["login"]: a for a in json.loads((world.root / rel).read_text())["actions"]}
    assert actions[login]["break_glass"] is True and actions[login]["action"] == "create"
    assert "break_glass" not in actions[namespace.login("bob", "readonly")]

    [row] = listed(world)
    assert (row["grant_file"], row["grantee"], row["login"], row["pull_request"]) == (
        GRANT, "alice", login, 12)
    [item] = needs_review(world)  # the queue lists it as needing review; nothing is due
    assert (item["subject"], item["due"], item["pull_request"]) == (GRANT, None, 12)
    assert item["waiting_on"] == ["@bob-gh", "@erin-gh"] and "needs review" in item["why"]
    assert (row["grant_commit"], row["merge_commit"], row["reviewed"]) == (commit, merge, False)
    table = break_glass(world)
    assert table.exit_code == 0 and GRANT in table.stdout and "#12" in table.stdout
    rows = list(csv.DictReader(io.StringIO(break_glass(world, "--format", "csv").stdout)))
    assert [(r["grant_file"], r["reviewed"], r["waiting_on"]) for r in rows] == [
        (GRANT, "false", "'@bob-gh; @erin-gh")]  # a leading @ is neutralised (CSV)
    assert listed(world, "--grantee", "bob") == []
    assert listed(world, "--target", "other*") == [] and len(listed(world, "--target", "d*")) == 1
    assert listed(world, "--since", "2099-01-01") == [] and len(listed(world, "--until",
                                                                       "2099-01-01")) == 1

    world.review(GRANT, "alice")  # her own review is refused, and says why
    refused = break_glass(world, "--format", "json")
    assert refused.exit_code == 0 and len(json.loads(refused.stdout)) == 1
    assert "reviews/db1/alice-bg.yaml:2: warning: reviewer: alice is the grantee" \
        in refused.stderr
    git(world.root, "rm", "-q", "reviews/db1/alice-bg.yaml")
    world.repo.commit("drop it")
    assert len(needs_review(world)) == 1  # still: her own review does not count
    world.review(GRANT, "bob", pr=31)
    assert listed(world) == [] and needs_review(world) == []
    empty = break_glass(world)
    assert empty.stdout == "no unreviewed break-glass grants\n" and empty.stderr == ""


def test_html_is_refused_with_one_line(tmp_path: Path) -> None:
    world = BreakGlassRepo(tmp_path / "repo")
    result = break_glass(world, "--format", "html")
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1


def test_a_team_code_owner_is_asked_of_the_forge(tmp_path: Path) -> None:
    world = BreakGlassRepo(tmp_path / "repo", None)
    world.repo.write(".github/CODEOWNERS", "/grants/db1/ @acme/dba\n/reviews/db1/ @acme/dba\n")
    world.repo.commit("codeowners")
    commit, merge = world.request()
    world.review(GRANT, "erin")
    for rel, data in record("audit/2026/12/06/20261206T101000Z-0123456789ab.json", GRANT,
                            commit, merge, 12).items():
        world.repo.write(rel, json.dumps(data))
    offline = break_glass(world, "--format", "json")
    assert len(json.loads(offline.stdout)) == 1 and "is not known (a team" in offline.stderr
    with fake_github() as forge:
        assert len(listed_with(world, forge.env())) == 1  # erin is not a member
        forge.member("acme", "dba", "erin-gh")
        assert listed_with(world, forge.env()) == []
        assert "/orgs/acme/teams/dba/memberships/erin-gh" in forge.paths()


def listed_with(world: BreakGlassRepo, env: dict[str, str]) -> list[dict[str, Any]]:
    result = break_glass(world, "--format", "json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_codeowners_gives_the_review_folder_to_the_target_s_approvers(tmp_path: Path) -> None:
    world = BreakGlassRepo(tmp_path / "repo")
    out = jitgrant("codeowners", "--repo", str(world.root), "--format", "json")
    rules = {r["pattern"]: r["owners"] for r in json.loads(out.stdout)["rules"]}
    assert rules["/reviews/db1/"] == rules["/grants/db1/"] == ["@bob-gh", "@erin-gh"]


def test_without_a_break_glass_level_codeowners_is_unchanged(tmp_path: Path) -> None:
    world = BreakGlassRepo(tmp_path / "repo")
    pol = break_glass_policy()
    del pol["access"]["breakglass"]
    world.repo.write("policies/main.yaml", pol)
    world.repo.commit("no break glass")
    out = jitgrant("codeowners", "--repo", str(world.root), "--format", "json")
    assert "/reviews/" not in out.stdout


def test_auto_approve_approves_a_break_glass_grant_of_the_allowed_groups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`jitgrant auto-approve` with the stand-in for `gh` of tests/cli/test_auto_approve.py:
    alice (sre) gets her break-glass grant approved and set to merge; bob (backend) does not,
    and no call is made for him."""
    gh = Gh(tmp_path, monkeypatch)
    world = BreakGlassRepo(tmp_path / "repo")
    for who, approved in (("alice", True), ("bob", False)):
        git(world.root, "checkout", "-q", "-B", f"ask-{who}", "main")
        world.repo.write(f"grants/db1/{who}-bg.yaml", grant(
            who, access="breakglass", expires=utc(minutes=50), reason="INC-9 orders stuck"))
        sha = world.repo.commit(f"{who} breaks the glass")
        gh.answer(author=f"{who}-gh", head=sha, teams=[])
        result = jitgrant("auto-approve", "--repo", str(world.root), "--base", "main",
                          "--pr", "7", "--sha", sha)
        assert result.exit_code == 0, result.stderr
        assert (gh.writes() == expected_writes(sha)) is approved, result.stdout
        if not approved:
            assert gh.calls() == [] and "the grant is invalid" in result.stdout
        gh.log.unlink(missing_ok=True)
