"""A temporary login working against its own revocation, on real servers."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.helpers import utc
from tests.integration.conftest import World, world  # noqa: F401 - the `world` fixture
from tests.integration.test_least_privilege import lp_world  # noqa: F401 - a fixture


def test_a_login_holding_its_own_row_is_revoked_all_the_same(world: World) -> None:  # noqa: F811
    """As the login: BEGIN; ALTER ROLE CURRENT_USER PASSWORD (its own verifier again), left
    idle in the transaction, holds the login's pg_authid row. The lock-out waits on it, ends
    the login's sessions and goes on: the login is dropped in the same run."""
    password = new_password()
    verifier = scram_sha256_verifier(password)
    expires = utc(minutes=30)
    world.add_grant(verifier=verifier, expires=expires)
    assert not world.run().failed
    login = world.login()
    holder = psycopg.connect(world.server.login_dsn(login, password), autocommit=True)
    holder.execute("BEGIN")
    holder.execute(sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(sql.Literal(verifier)))
    run = world.run(now=expires + timedelta(minutes=1))
    target = run.targets[0]
    assert not run.failed, (target.error, target.results)
    assert target.results[0].sessions_ended >= 1
    assert world.role(login) is None
    with pytest.raises(psycopg.OperationalError):
        holder.execute("SELECT 1")
    holder.close()


def test_a_login_holding_its_own_row_beside_a_revocation_that_fails(
        lp_world: World) -> None:  # noqa: F811
    """The lock-out of the whole part fails on a role made by hand in the namespace (no ADMIN
    on it), so each action is locked out on its own: there too, the login holding its own row
    has its sessions ended and is dropped."""
    w = lp_world
    password = new_password()
    verifier = scram_sha256_verifier(password)
    w.add_grant(verifier=verifier)
    assert not w.run().failed
    login = w.login()
    by_hand = w.login("mallory")
    with w.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(by_hand)))
    holder = psycopg.connect(w.server.login_dsn(login, password), autocommit=True)
    holder.execute("BEGIN")
    holder.execute(sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(sql.Literal(verifier)))
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("done")
    run = w.run()
    target = run.targets[0]
    assert target.plan is not None
    outcome = {a.login: r.error for a, r in zip(target.plan.actions, target.results, strict=True)}
    assert outcome[login] is None and outcome[by_hand] is not None, outcome
    assert w.role(login) is None
    with pytest.raises(psycopg.OperationalError):
        holder.execute("SELECT 1")
    holder.close()
