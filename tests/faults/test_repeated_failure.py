"""A target that fails the same way run after run (cron every few minutes) writes one audit
record per change of outcome, not one per run: the real `jitgrant apply`."""

from __future__ import annotations

from psycopg import sql

from tests.faults.test_failures import jitgrant_apply
from tests.helpers import git, grant
from tests.integration.conftest import World
from tests.integration.test_least_privilege import lp_world  # noqa: F401 - a fixture


def _commits(w: World) -> int:
    return int(git(w.repo.root, "rev-list", "--count", "HEAD"))


def test_the_same_failure_again_writes_no_new_record(lp_world: World) -> None:  # noqa: F811
    """A role made by hand in the namespace, which a CREATEROLE reconciler may not drop."""
    w = lp_world
    with w.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(w.login("mallory"))))
    first = jitgrant_apply(w.repo.root, w.env)
    assert first.code == 1 and "audit record: " in first.stdout, first.stdout
    after_first = _commits(w)
    again = jitgrant_apply(w.repo.root, w.env)
    assert again.code == 1 and "audit record: " not in again.stdout, again.stdout
    assert _commits(w) == after_first
    assert git(w.repo.root, "status", "--porcelain") == ""
    w.repo.write("grants/db1/bob.yaml", grant("bob"))
    w.repo.commit("grant bob")
    changed = jitgrant_apply(w.repo.root, w.env)  # bob's login is made: a change of outcome
    assert changed.code == 1 and "audit record: " in changed.stdout, changed.stdout
    assert _commits(w) == after_first + 2
