"""A break-glass grantee stretching their access before anyone reviewed it: each auto-approved
pull request stays within max_duration from its own merge, so extending the live grant, adding
a second file, or renaming it (delete and add) would chain windows for as long as they like.
While the grantee's break-glass access on a target has not ended at the base, another of their
break-glass grants there needs a person. Git is real; `gh` is the local stand-in of
tests/cli/test_auto_approve.py (it records every call)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.breakglass import live_at_base
from reconciler.review import not_auto_approvable
from reconciler.snapshot import read_snapshot
from reconciler.timeutil import now_utc
from tests.break_glass import BG, BreakGlassRepo, identity
from tests.cli.conftest import jitgrant
from tests.cli.test_auto_approve import Gh
from tests.helpers import git, grant, utc

GRANT = "grants/db1/alice-bg.yaml"


def ask(world: BreakGlassRepo, rel: str, who: str = "alice", minutes: int = 59,
        drop: str | None = None) -> str:
    """A pull request branch from main writing one break-glass grant (and removing `drop`)."""
    git(world.root, "checkout", "-q", "-B", f"ask-{who}-{Path(rel).stem}", "main")
    if drop:
        git(world.root, "rm", "-q", drop)
    world.repo.write(rel, grant(who, access=BG, expires=utc(minutes=minutes),
                                reason="INC-9 still stuck"))
    return world.repo.commit(f"{who} wants more", **identity(who))


def reasons(world: BreakGlassRepo, sha: str) -> list[str]:
    now = now_utc()
    snap = read_snapshot(world.root, sha, now, "main")
    return not_auto_approvable(snap) + live_at_base(snap, read_snapshot(world.root, "main", now),
                                                    now)


@pytest.mark.parametrize(("rel", "drop"), [(GRANT, None), ("grants/db1/alice-bg2.yaml", None),
                                           ("grants/db1/alice-bg2.yaml", GRANT)])
def test_live_break_glass_access_is_not_stretched_without_a_person(
        tmp_path: Path, rel: str, drop: str | None) -> None:
    """Extension of the file, a second file, a rename: each needs a person."""
    world = BreakGlassRepo(tmp_path / "repo")
    world.request()
    sha = ask(world, rel, drop=drop)
    [reason] = reasons(world, sha)
    assert reason.startswith(f"{rel}: alice already holds break-glass access on db1 ({GRANT}")


def test_back_to_back_windows_in_one_pull_request_need_a_person(tmp_path: Path) -> None:
    """Nothing live at the base, but two files: now to +59m, and +59m to +1h58m."""
    world = BreakGlassRepo(tmp_path / "repo")
    git(world.root, "checkout", "-q", "-B", "windows", "main")
    world.repo.write(GRANT, grant("alice", access=BG, expires=utc(minutes=59), reason="INC-9"))
    world.repo.write("grants/db1/alice-bg2.yaml", grant(
        "alice", access=BG, starts=utc(minutes=59), expires=utc(minutes=118), reason="INC-9"))
    sha = world.repo.commit("two windows", **identity("alice"))
    [reason] = reasons(world, sha)
    assert reason.startswith("grants/db1/alice-bg2.yaml: a second break-glass grant for alice")


def test_another_grantee_or_ended_access_is_auto_approvable(tmp_path: Path) -> None:
    """dave (sre) is not held back by alice's access; and once alice's has ended (its file
    removed), her next emergency is a new one."""
    world = BreakGlassRepo(tmp_path / "repo")
    world.request()
    assert reasons(world, ask(world, "grants/db1/dave-bg.yaml", who="dave")) == []
    git(world.root, "checkout", "-q", "main")
    git(world.root, "rm", "-q", GRANT)
    world.repo.commit("alice's access ended")
    assert reasons(world, ask(world, "grants/db1/alice-bg3.yaml")) == []


@pytest.mark.parametrize("command", ["auto-approve", "validate"])
def test_the_commands_refuse_the_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           command: str) -> None:
    """`auto-approve` makes no call to gh; `validate --auto-approvable` exits 1, saying why."""
    gh = Gh(tmp_path, monkeypatch)
    world = BreakGlassRepo(tmp_path / "repo")
    world.request()
    sha = ask(world, GRANT)
    gh.answer(author="alice-gh", head=sha, teams=[])
    if command == "auto-approve":
        result = jitgrant("auto-approve", "--repo", str(world.root), "--base", "main",
                          "--pr", "7", "--sha", sha)
        assert result.exit_code == 0, result.stderr
        assert gh.calls() == [] and "already holds break-glass access" in result.stdout
    else:
        result = jitgrant("validate", "--repo", str(world.root), "--base", "main", "--rev", sha,
                          "--auto-approvable")
        assert result.exit_code == 1 and "already holds break-glass access" in result.stderr
