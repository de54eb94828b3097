"""What the review after the fact can and cannot tell with rebase (or fast-forward) merges: the
pull request's commits land one by one on the branch, so a review record committed by the
reviewer after the grant's commit in the grant's own pull request counts (the limit
docs/operations.md states), and that pull request is never auto-approvable: it touches
reviews/, so a person approves it before anything merges. Git is real."""

from __future__ import annotations

from pathlib import Path

from reconciler.breakglass import status
from reconciler.review import not_auto_approvable
from reconciler.snapshot import read_snapshot
from reconciler.timeutil import now_utc
from tests.break_glass import BG, BreakGlassRepo, identity, record
from tests.helpers import grant, utc

GRANT = "grants/db1/alice-bg.yaml"
REC = "audit/2026/12/06/20261206T101000Z-0123456789ab.json"


def test_a_record_rebased_in_with_its_grant_counts_and_that_change_needs_a_person(
        tmp_path: Path) -> None:
    world = BreakGlassRepo(tmp_path / "repo")
    base = world.head()
    world.repo.write(GRANT, grant("alice", access=BG, expires=utc(minutes=50), reason="INC-9"))
    wrote = world.repo.commit("alice: break the glass", **identity("alice"))
    world.repo.write("reviews/db1/alice-bg.yaml",
                     {"grant": GRANT, "reviewer": "bob", "comment": "fine"})
    world.repo.commit("bob: reviewed", **identity("bob"))
    snap = read_snapshot(world.root, "HEAD", now_utc(), base)
    assert "reviews/db1/alice-bg.yaml: not a grant file" in not_auto_approvable(snap)
    found = status(world.root, record(REC, GRANT, wrote, wrote, None), env={})
    assert [g.reviewed_by for g in found.grants] == ["bob"]
