"""Attacks on the review after the fact of a break-glass grant (breakglass.py): a grantee (or
whoever asked for the grant) trying to make their own break-glass access look reviewed. Each
attack leaves the grant listed as unreviewed, and says why the record did not count. Git is
real (a local repository, pull requests merged with --no-ff); the audit records are shaped as
apply writes them (tests/cli/test_break_glass.py shows apply writing one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.breakglass import Status, queue_fields, status, unreviewed
from reconciler.review import not_auto_approvable
from reconciler.snapshot import read_snapshot
from reconciler.timeutil import now_utc
from tests.break_glass import BreakGlassRepo, identity, record
from tests.helpers import git

GRANT = "grants/db1/alice-bg.yaml"
REC = "audit/2026/12/06/20261206T101000Z-0123456789ab.json"


@pytest.fixture
def world(tmp_path: Path) -> BreakGlassRepo:
    return BreakGlassRepo(tmp_path / "repo")


def granted(world: BreakGlassRepo, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """alice's break-glass grant merged as pull request #12, and the record of its create."""
    commit, merge = world.request(**kwargs)
    return record(REC, GRANT, commit, merge, 12, author=kwargs.get("author", "alice"))


def reasons(found: Status) -> str:
    return "\n".join(str(p) for p in found.problems)


def test_a_code_owner_s_review_after_the_merge_counts(world: BreakGlassRepo) -> None:
    records = granted(world)
    [waiting] = unreviewed(world.root, records)
    assert (waiting.grant_file, waiting.waiting_on) == (GRANT, ("@bob-gh", "@erin-gh"))
    item = queue_fields(waiting)  # what a "needs review" queue lists
    assert (item["kind"], item["subject"], item["pr"], item["due"]) == (
        "break-glass", GRANT, 12, "")
    world.review(GRANT, "bob")
    found = status(world.root, records, env={})
    assert found.unreviewed == [] and found.problems == []
    [done] = found.grants
    assert (done.reviewed_by, done.review_file) == ("bob", "reviews/db1/alice-bg.yaml")


def test_the_grantee_reviewing_their_own_grant_does_not_count(world: BreakGlassRepo) -> None:
    records = granted(world)
    world.review(GRANT, "alice")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1
    assert "reviewer: alice is the grantee" in reasons(found)


def test_whoever_asked_for_the_grant_cannot_review_it(world: BreakGlassRepo) -> None:
    """dave, an on-call lead, opened the grant for alice; dave's review is his own request."""
    records = granted(world, author="dave")
    world.review(GRANT, "dave")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1 and "dave committed the grant" in reasons(found)


def test_a_record_naming_someone_else_but_committed_by_the_grantee(
        world: BreakGlassRepo) -> None:
    records = granted(world)
    world.review(GRANT, "bob", author="alice")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1
    assert "is by alice@example.com, not by bob" in reasons(found)


def test_a_review_in_the_grant_s_own_pull_request_does_not_count(world: BreakGlassRepo) -> None:
    """Written before the merge, even by bob, and dated a day later: git's order decides."""
    later = "2031-01-01T00:00:00+00:00"
    git(world.root, "checkout", "-q", "-b", "both", "main")
    world.repo.write(GRANT, {"grantee": "alice", "target": "db1", "access": "breakglass",
                             "expires": "2031-01-01T00:30:00Z", "reason": "INC-9"})
    commit = world.repo.commit("alice asks", **identity("alice"))
    world.repo.write("reviews/db1/alice-bg.yaml", {"grant": GRANT, "reviewer": "bob",
                                                   "comment": "fine"})
    world.repo.commit("bob reviews early", **identity("bob"), GIT_AUTHOR_DATE=later,
                      GIT_COMMITTER_DATE=later)
    git(world.root, "checkout", "-q", "main")
    git(world.root, "merge", "-q", "--no-ff", "both", "-m", "Merge pull request #12 from x/y")
    records = record(REC, GRANT, commit, world.head(), 12)
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1 and "not after it" in reasons(found)


def test_a_review_branched_before_the_merge_and_merged_after_does_not_count(
        world: BreakGlassRepo) -> None:
    """bob wrote the record on a branch that never saw the merged grant."""
    git(world.root, "branch", "early", "main")
    records = granted(world)
    git(world.root, "checkout", "-q", "early")
    world.repo.write("reviews/db1/alice-bg.yaml", {"grant": GRANT, "reviewer": "bob",
                                                   "comment": "fine"})
    world.repo.commit("bob reviews", **identity("bob"))
    git(world.root, "checkout", "-q", "main")
    git(world.root, "merge", "-q", "--no-ff", "early", "-m", "Merge pull request #30 from x/z")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1 and "not after it" in reasons(found)


def test_a_review_of_an_earlier_grant_at_the_same_path_does_not_cover_a_new_one(
        world: BreakGlassRepo) -> None:
    first = granted(world)
    world.review(GRANT, "bob")
    commit, merge = world.request(pr=40, reason="INC-10 again")
    second = record("audit/2026/12/07/20261207T101000Z-abcdefabcdef.json", GRANT, commit,
                    merge, 40, started="2099-01-01T00:00:00Z", run_id="abcdefabcdef")
    found = status(world.root, {**first, **second}, env={})
    assert [(g.pull_request, g.reviewed_by) for g in found.grants] == [(12, "bob"), (40, None)]


def test_a_review_of_another_grant_or_of_none_covers_nothing(world: BreakGlassRepo) -> None:
    records = granted(world)
    world.review("grants/db1/dave-bg.yaml", "bob", name="x.yaml")
    world.review("grants/db1/nothing.yaml", "bob", name="y.yaml", pr=31)
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1
    assert "grants/db1/dave-bg.yaml is no break-glass grant in the audit trail" in reasons(found)
    assert "grants/db1/nothing.yaml is no break-glass grant" in reasons(found)


def test_a_review_outside_the_target_s_folder_does_not_count(world: BreakGlassRepo) -> None:
    """reviews/<target>/ is what CODEOWNERS gives the target's approvers."""
    records = granted(world)
    world.review(GRANT, "bob", folder="elsewhere")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1 and "belongs in reviews/db1/" in reasons(found)


def test_a_reviewer_who_is_no_code_owner_does_not_count(world: BreakGlassRepo) -> None:
    """dave is an active person, not the grantee, yet no approver of db1."""
    records = granted(world)
    world.review(GRANT, "dave")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1
    assert "dave is not a code owner of grants/db1/alice-bg.yaml" in reasons(found)


def test_an_unknown_or_inactive_reviewer_does_not_count(world: BreakGlassRepo) -> None:
    records = granted(world)
    world.review(GRANT, "carol")  # inactive
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1
    assert "'carol' is not an active person" in reasons(found)


def test_a_malformed_record_is_reported_and_counts_for_nothing(world: BreakGlassRepo) -> None:
    records = granted(world)
    world.review(GRANT, "bob", approved=True)  # an unknown key
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1
    assert ("reviews/db1/alice-bg.yaml:4: warning: unknown key 'approved'; not counted"
            in reasons(found))


def test_a_failed_create_or_an_unmarked_action_is_no_break_glass_grant(
        world: BreakGlassRepo) -> None:
    commit, merge = world.request()
    assert unreviewed(world.root, record(REC, GRANT, commit, merge, 12, status="failed")) == []
    assert unreviewed(world.root, record(REC, GRANT, commit, merge, 12,
                                         break_glass=False)) == []


def test_a_team_code_owner_counts_only_when_the_forge_says_so(world: BreakGlassRepo) -> None:
    """CODEOWNERS names a team: offline, membership is not known and the review does not
    count (the forge answer is tests/cli/test_break_glass.py's, with the local stand-in)."""
    world.repo.write(".github/CODEOWNERS", "/grants/db1/ @acme/dba\n")
    world.repo.commit("codeowners")
    records = granted(world)
    world.review(GRANT, "erin")
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1 and "is not known (a team" in reasons(found)


@pytest.mark.parametrize("change", ["add", "delete"])
def test_auto_approve_never_approves_a_review_record(world: BreakGlassRepo, change: str) -> None:
    """A pull request touching reviews/ needs a person, even when all else in it is a
    break-glass grant that would merge itself."""
    base = world.head()
    world.review(GRANT, "bob")
    if change == "delete":
        base = world.head()
        git(world.root, "rm", "-q", "reviews/db1/alice-bg.yaml")
        world.repo.commit("drop the review", **identity("alice"))
    snap = read_snapshot(world.root, "HEAD", now_utc(), base)
    assert "reviews/db1/alice-bg.yaml: not a grant file" in not_auto_approvable(snap)


def test_squash_merges_order_by_the_squash_commits(world: BreakGlassRepo) -> None:
    """Squashed pull requests are single commits on main: the grant's commit is its own
    merge, and a review squashed after it counts; one squashed before it does not."""
    world.repo.write("reviews/db1/early.yaml", {"grant": GRANT, "reviewer": "bob",
                                                "comment": "ahead of time"})
    world.repo.commit("bob reviews ahead (#11)", **identity("bob"))
    world.repo.write(GRANT, {"grantee": "alice", "target": "db1", "access": "breakglass",
                             "expires": "2031-01-01T00:30:00Z", "reason": "INC-9"})
    squash = world.repo.commit("alice breaks the glass (#12)", **identity("alice"))
    records = record(REC, GRANT, squash, squash, 12)
    found = status(world.root, records, env={})
    assert len(found.unreviewed) == 1 and "not after it" in reasons(found)
    world.repo.write("reviews/db1/after.yaml", {"grant": GRANT, "reviewer": "erin",
                                                "comment": "fine"})
    world.repo.commit("erin reviews (#13)", **identity("erin"))
    found = status(world.root, records, env={})
    assert [(g.reviewed_by, g.review_file) for g in found.grants] == [
        ("erin", "reviews/db1/after.yaml")]


def test_a_planted_audit_record_cannot_move_the_merge_earlier(world: BreakGlassRepo) -> None:
    """Anyone can open a pull request adding a file under audit/: one claiming an earlier
    merge for the grant (so that a review written before the real merge would count) only
    adds a commit the review must also come after."""
    base = world.head()
    git(world.root, "branch", "early", "main")
    commit, merge = world.request()
    git(world.root, "checkout", "-q", "early")
    world.repo.write("reviews/db1/alice-bg.yaml", {"grant": GRANT, "reviewer": "bob",
                                                   "comment": "fine"})
    world.repo.commit("bob reviews", **identity("bob"))
    git(world.root, "checkout", "-q", "main")
    git(world.root, "merge", "-q", "--no-ff", "early", "-m", "Merge pull request #30 from x/z")
    real = record(REC, GRANT, commit, merge, 12)
    planted = record("audit/2020/01/01/20200101T000000Z-000000000000.json", GRANT, commit,
                     base, 12, started="2020-01-01T00:00:00Z", run_id="000000000000")
    found = status(world.root, {**real, **planted}, env={})
    assert len(found.unreviewed) == 1 and "not after it" in reasons(found)
    assert set(found.grants[0].after) == {commit, merge, base}
