"""Far-future expiries. Beyond Python's year 9999 (PostgreSQL accepts VALID UNTIL
'294276-12-31') the catalog read does not fail, so the revocations that are due still run,
and such an expiry is drift like any other. And `standing` lists logins that expire only
years from now."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from psycopg import sql

from reconciler.cli import main
from tests.helpers import utc
from tests.integration.conftest import World
from tests.integration.test_standing import PgRoles, pg_roles  # noqa: F401 - a fixture

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


def test_standing_lists_expiries_more_than_a_year_away(
        world: World, pg_roles: PgRoles) -> None:  # noqa: F811
    """jitgrant's logins expire within max_duration; a VALID UNTIL years away is standing
    access all the same (`standing` draws the line at one year)."""
    def day(value: Any) -> str:
        return value.strftime("%Y-%m-%d")

    far, near = utc(days=400), utc(days=330)
    made = {pg_roles.create(name, f"LOGIN VALID UNTIL '{until}'"): why for name, until, why in (
        ("y9999", "9999-12-31", "expires 9999-12-31"),
        ("y2200", "2200-01-01 12:00+00", "expires 2200-01-01"),
        ("beyond", "294276-12-31", "expires 294276-12-31"),
        ("far", far.isoformat(), f"expires {day(far)}"),
        ("near", near.isoformat(), None))}
    result = CliRunner().invoke(main, ["standing", "--repo", str(world.repo.root), "--format",
                                       "json"], env=world.env, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    found = {row["login"]: row["why"] for row in json.loads(result.stdout)["standing"]}
    assert {k: v for k, v in found.items() if k.startswith(pg_roles.tag)} == {
        name: why for name, why in made.items() if why is not None}
