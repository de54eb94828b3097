"""What a reconciler without superuser cannot do, and what it does instead (README, "A
least-privilege reconciler role"), on PostgreSQL 18: claims that had no test (issue 12,
finding 11). Also the savepoint-per-action retry: one refused action is reported and the
rest of the run still happens."""

from __future__ import annotations

import psycopg
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.integration.conftest import World
from tests.integration.test_least_privilege import lp_world  # noqa: F401 - a fixture


def _as_superuser(w: World, statement: str, *names: str, database: str | None = None) -> None:
    with w.server.conn(database) as c:
        c.execute(sql.SQL(statement).format(*(sql.Identifier(n) for n in names)))


def test_a_password_changed_out_of_band_is_not_detected(lp_world: World) -> None:  # noqa: F811
    w = lp_world
    w.add_grant(verifier=scram_sha256_verifier(new_password()))
    assert not w.run().failed
    other = new_password()
    with w.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(w.login()),
                                                               sql.Literal(other)))
    run = w.run()
    assert not run.failed and run.targets[0].plan is not None
    assert run.targets[0].plan.actions == ()  # pg_authid is out of its reach
    psycopg.connect(w.server.login_dsn(w.login(), other)).close()


def test_a_refused_drop_is_retried_by_the_next_run(lp_world: World) -> None:  # noqa: F811
    w = lp_world
    w.add_grant()
    assert not w.run().failed
    login = w.login()
    second = w.create_database()
    _as_superuser(w, "GRANT CREATE ON SCHEMA public TO {}", login, database=second)
    w.repo.remove("grants/db1/alice.yaml")
    w.repo.commit("done")
    first = w.run()
    assert first.failed and "cannot be dropped" in (first.targets[0].results[0].error or "")
    again = w.run()  # the privilege is still there: tried again, refused again
    assert again.failed and again.targets[0].plan is not None
    assert [(a.kind, a.login) for a in again.targets[0].plan.actions] == [("revoke", login)]
    role = w.role(login)
    assert role is not None and not role["rolcanlogin"]
    _as_superuser(w, "REVOKE CREATE ON SCHEMA public FROM {}", login, database=second)
    done = w.run()
    assert not done.failed, done.targets[0].results
    assert w.role(login) is None


def test_a_role_made_by_hand_in_the_namespace_is_reported_not_dropped(
        lp_world: World) -> None:  # noqa: F811
    w = lp_world
    hand = w.prefix + "handmade"
    _as_superuser(w, "CREATE ROLE {} LOGIN", hand)
    run = w.run()
    assert run.failed
    [result] = run.targets[0].results
    assert result.error and "permission denied" in result.error
    role = w.role(hand)
    assert role is not None and role["rolcanlogin"]  # it has no ADMIN on it: left as it is


def test_a_managed_login_made_superuser_is_left_alone_and_reported(
        lp_world: World) -> None:  # noqa: F811
    w = lp_world
    w.add_grant()
    assert not w.run().failed
    _as_superuser(w, "ALTER ROLE {} SUPERUSER", w.login())
    run = w.run()
    assert run.failed  # reported as an error that names the login
    assert any(w.login() in p.message and "left alone: it is a superuser" in p.message
               for p in run.problems)
    assert run.targets[0].plan is not None and run.targets[0].plan.actions == ()
    role = w.role(w.login())
    assert role is not None and role["rolsuper"]


def test_one_refused_action_is_reported_and_the_others_happen(
        lp_world: World) -> None:  # noqa: F811
    """alice's repair is refused (a superuser granted her a role the reconciler has no ADMIN
    on), so the run's one transaction fails; retried with a savepoint per action, bob's new
    login and alice's expiry are still made."""
    w = lp_world
    w.add_grant()
    assert not w.run().failed
    _as_superuser(w, "GRANT {} TO {}", w.owner, w.login())
    _as_superuser(w, "ALTER ROLE {} CONNECTION LIMIT 50", w.login())
    w.add_grant("bob", grantee="bob")
    run = w.run()
    assert run.failed
    results = dict(zip([a.login for a in run.targets[0].plan.actions],  # type: ignore[union-attr]
                       run.targets[0].results, strict=True))
    assert results[w.login()].error and results[w.login("bob")].error is None
    bob = w.role(w.login("bob"))
    assert bob is not None and bob["rolcanlogin"]
    alice = w.role(w.login())
    assert alice is not None and alice["rolconnlimit"] == 3
