"""Expiries beyond Python's year 9999 (PostgreSQL accepts VALID UNTIL '294276-12-31'): the
catalog read does not fail on them, so the revocations that are due still run, and they are
drift like any other expiry."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import sql

from tests.helpers import utc
from tests.integration.conftest import World

BEYOND = ["10000-01-01", "294276-12-31"]


def valid_until(w: World, name: str) -> Any:
    """As text: psycopg cannot load a timestamp after year 9999."""
    with w.server.conn() as c:
        row = c.execute("SELECT rolvaliduntil::text, rolcanlogin FROM pg_roles"
                        " WHERE rolname = %s", [name]).fetchone()
    return row


def alter(w: World, name: str, options: str) -> None:
    with w.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} " + options).format(sql.Identifier(name)))


def actions(run: Any) -> list[tuple[str, str, str]]:
    return sorted((a.kind, a.login, a.cause) for t in run.targets
                  for a in (t.plan.actions if t.plan else ()))


@pytest.mark.parametrize("beyond", BEYOND)
def test_an_expiry_after_year_9999_is_drift_and_blocks_no_revocation(
        world: World, beyond: str) -> None:
    expires = utc(hours=2)
    world.add_grant(expires=expires)
    world.add_grant("bob", grantee="bob", expires=utc(seconds=2))
    assert not world.run().failed
    alice, bob = world.login(), world.login("bob")
    stray = world.prefix + "stray"
    alter(world, alice, f"VALID UNTIL '{beyond}'")
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN VALID UNTIL " + f"'{beyond}'")
                  .format(sql.Identifier(stray)))
    run = world.run(now=utc(seconds=3))  # bob's grant has expired
    assert not run.failed, (run.targets[0].error, run.problems)
    assert actions(run) == [("revoke", bob, "expired"), ("revoke", stray, "unknown"),
                            ("update", alice, "drift")]
    plan = run.targets[0].plan
    assert plan is not None
    assert [a.changes.describe() for a in plan.actions if a.login == alice] == [["expiry"]]
    assert world.role(bob) is None and valid_until(world, stray) is None
    assert world.role(alice)["rolvaliduntil"] == expires  # type: ignore[index]
