"""A break-glass create whose COMMIT was in doubt (status `unknown`: the connection was lost
while it committed) may have given access: it is listed for review like one that succeeded,
so a grantee who cuts the connection at the right moment (a hostile database user can end the
reconciler's backend) does not leave access nobody is asked to review. Audit records are shaped
as apply writes them (tests/break_glass.py); git is real."""

from __future__ import annotations

from pathlib import Path

from reconciler.breakglass import unreviewed
from tests.break_glass import BreakGlassRepo, record

GRANT = "grants/db1/alice-bg.yaml"
REC = "audit/2026/12/06/20261206T101000Z-0123456789ab.json"


def test_an_in_doubt_create_is_listed_and_a_failed_one_is_not(tmp_path: Path) -> None:
    world = BreakGlassRepo(tmp_path / "repo")
    commit, merge = world.request()
    [listed] = unreviewed(world.root, record(REC, GRANT, commit, merge, 12, status="unknown"))
    assert (listed.grant_file, listed.grantee) == (GRANT, "alice")
    assert unreviewed(world.root, record(REC, GRANT, commit, merge, 12, status="failed")) == []
