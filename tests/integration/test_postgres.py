"""The PostgreSQL engine against real servers: 15 on the machine and an embedded 18."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.engines.postgres import lock_key
from tests.helpers import utc
from tests.integration.conftest import World


def actions(run, kind=None):  # type: ignore[no-untyped-def]
    found = [a for t in run.targets for a in (t.plan.actions if t.plan else ())]
    return [a for a in found if kind is None or a.kind == kind]


def test_grant_becomes_login_then_second_apply_plans_nothing(world: World) -> None:
    expires = utc(hours=2)
    world.add_grant(expires=expires)
    run = world.run()
    assert not run.failed, run.targets[0].error
    assert [(a.kind, a.cause) for a in actions(run)] == [("create", "granted")]
    role = world.role(world.login())
    assert role is not None
    assert role["rolcanlogin"] and not role["rolsuper"]
    assert role["rolvaliduntil"] == expires
    assert role["rolconnlimit"] == 3
    assert role["member_of"] == [world.group]
    again = world.run()
    assert actions(again) == [] and not again.failed


def test_password_works_and_server_refuses_it_after_expiry(scram_world: World) -> None:
    w = scram_world
    password = new_password()
    w.add_grant(expires=utc(seconds=6), verifier=scram_sha256_verifier(password))
    assert not w.run().failed
    with psycopg.connect(w.server.login_dsn(w.login(), password)) as c:
        assert c.execute("SELECT current_user").fetchone() == (w.login(),)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(w.server.login_dsn(w.login(), "wrong-" + password))
    time.sleep(7)
    # No apply in between: the server itself enforces VALID UNTIL.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(w.server.login_dsn(w.login(), password))
    run = w.run()
    assert [(a.kind, a.cause) for a in actions(run)] == [("revoke", "expired")]
    assert w.role(w.login()) is None


def test_grant_without_verifier_has_no_password(scram_world: World) -> None:
    w = scram_world
    w.add_grant()
    assert not w.run().failed
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.server.login_dsn(w.login(), ""))


def _login_with_objects(world: World) -> tuple[str, str, str, psycopg.Connection[Any]]:
    """A login that created a table in a second database and has a session open."""
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    assert not world.run().failed
    login = world.login()
    second = world.create_database()
    with world.server.conn(second) as admin:
        admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
            sql.Identifier(login)))
    with psycopg.connect(world.server.login_dsn(login, password, second),
                         autocommit=True) as c:
        c.execute("CREATE TABLE incident_notes (id int)")
    session = psycopg.connect(world.server.login_dsn(login, password), autocommit=True)
    return login, password, second, session


def _owner_of_notes(world: World, database: str) -> Any:
    with world.server.conn(database) as c:
        row = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'incident_notes'")
        return row.fetchone()


def test_revocation_ends_sessions_and_reassigns_objects(world: World) -> None:
    world.write_policy(reassign_owned_to=world.owner)
    login, _, second, session = _login_with_objects(world)
    world.repo.remove("grants/db1/alice.yaml")
    world.repo.commit("end alice's access")
    run = world.run()
    assert not run.failed, run.targets[0].results
    revoke = run.targets[0]
    assert [(a.kind, a.cause) for a in actions(run)] == [("revoke", "removed")]
    assert revoke.results[0].sessions_ended == 1
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    assert _owner_of_notes(world, second) == (world.owner,)
    assert revoke.results[0].owned_objects[second] == world.owner
    assert world.role(login) is None


def test_objects_never_go_to_a_superuser(world: World) -> None:
    """By default objects go to the database's owner; here that is a superuser, so the login is
    locked out, its sessions ended and its memberships stripped, but it is not dropped."""
    login, password, second, session = _login_with_objects(world)
    assert world.database_owner(second) in _superusers(world)
    world.repo.remove("grants/db1/alice.yaml")
    world.repo.commit("end alice's access")
    run = world.run()
    assert run.failed
    assert any("would go to the superuser" in p.message for p in run.problems)
    assert run.targets[0].results[0].sessions_ended == 1
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    role = world.role(login)
    assert role is not None and not role["rolcanlogin"] and role["member_of"] == []
    assert _owner_of_notes(world, second) == (login,)  # not handed to the superuser
    if world.server.scram:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(world.server.login_dsn(login, password))
    again = world.run()  # already locked out and stripped: reported, no new audit record
    assert actions(again) == [] and again.failed
    assert any("would go to the superuser" in p.message for p in again.problems)
    world.write_policy(reassign_owned_to=world.owner)
    assert not world.run().failed
    assert world.role(login) is None and _owner_of_notes(world, second) == (world.owner,)


def _superusers(world: World) -> set[str]:
    with world.server.conn() as c:
        return {r[0] for r in c.execute("SELECT rolname FROM pg_roles WHERE rolsuper")}


def test_roles_outside_or_protected_survive_every_command(world: World) -> None:
    outsider, superuser, kept = "outside_" + world.prefix, world.prefix + "root", \
        world.prefix + "keep"
    world.write_policy(never_touch=[kept])
    try:
        with world.server.conn() as c:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN VALID UNTIL 'infinity'").format(
                sql.Identifier(outsider)))
            c.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(
                sql.Identifier(superuser)))
            c.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 7").format(
                sql.Identifier(kept)))
            c.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(world.group),
                                                      sql.Identifier(kept)))
        before = {n: world.role(n) for n in (outsider, superuser, kept, world.group)}
        world.add_grant(expires=utc(seconds=3))
        world.run()
        time.sleep(3.5)
        world.run()
        world.run(execute=False)
        after = {n: world.role(n) for n in (outsider, superuser, kept, world.group)}
        assert after == before
    finally:
        with world.server.conn() as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(outsider)))


def test_hand_made_login_inside_namespace_is_revoked(world: World) -> None:
    stray = world.prefix + "mallory_readonly"
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(stray)))
    run = world.run()
    assert [(a.login, a.kind, a.cause) for a in actions(run)] == [(stray, "revoke", "unknown")]
    assert world.role(stray) is None


def test_drift_is_put_back(world: World) -> None:
    password = new_password()
    expires = utc(hours=1)
    world.add_grant(expires=expires, verifier=scram_sha256_verifier(password))
    assert not world.run().failed
    login = sql.Identifier(world.login())
    with world.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} SUPERUSER CREATEDB VALID UNTIL 'infinity'"
                          " CONNECTION LIMIT 99 PASSWORD 'changed'").format(login))
        c.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(world.owner), login))
        c.execute(sql.SQL("CREATE ROLE {} IN ROLE {}").format(sql.Identifier(world.member),
                                                              login))
        c.execute(sql.SQL("ALTER ROLE {} SET work_mem = '1GB'").format(login))
        c.execute(sql.SQL("COMMENT ON ROLE {} IS 'jitgrant: alice (readonly) state 0'")
                  .format(login))
        c.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(world.group), login))
    drifted = world.role(world.login())
    assert drifted is not None and drifted["infinite"]
    run = world.run()
    assert not run.failed, run.targets[0].results
    [update] = actions(run)
    assert update.kind == "update"
    described = set(update.changes.describe())
    assert {"login attributes", "expiry", "password", "connection limit", "reset work_mem",
            f"grant {world.group}", f"revoke {world.owner}",
            f"remove member {world.member}"} <= described
    role = world.role(world.login())
    assert role is not None
    assert not role["rolsuper"] and role["rolvaliduntil"] == expires
    assert role["rolconnlimit"] == 3 and role["member_of"] == [world.group]
    assert actions(world.run()) == []
    if world.server.scram:
        with psycopg.connect(world.server.login_dsn(world.login(), password)):
            pass


def test_drift_cause_is_drift_when_the_grant_did_not_change(world: World) -> None:
    world.add_grant()
    world.run()
    with world.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} VALID UNTIL 'infinity'").format(
            sql.Identifier(world.login())))
    assert [(a.kind, a.cause) for a in actions(world.run())] == [("update", "drift")]
    world.add_grant(expires=utc(hours=3))  # an extension is a change of grant, not drift
    assert [(a.kind, a.cause) for a in actions(world.run())] == [("update", "granted")]


def test_overlapping_grants_share_one_login_with_latest_expiry(world: World) -> None:
    early, late = utc(hours=1), utc(hours=3)
    pw_late = new_password()
    world.add_grant("alice-1", expires=early, verifier=scram_sha256_verifier(new_password()))
    world.add_grant("alice-2", expires=late, verifier=scram_sha256_verifier(pw_late))
    run = world.run()
    [create] = actions(run)
    assert create.expires == late
    assert create.grant_files == ("grants/db1/alice-1.yaml", "grants/db1/alice-2.yaml")
    role = world.role(world.login())
    assert role is not None and role["rolvaliduntil"] == late
    if world.server.scram:
        psycopg.connect(world.server.login_dsn(world.login(), pw_late)).close()


def test_future_start_creates_nothing_until_then(world: World) -> None:
    starts = utc(hours=1)
    world.add_grant(starts=starts, expires=utc(hours=3))
    assert actions(world.run()) == []
    later = world.run(execute=False, now=starts + timedelta(minutes=1))
    assert [(a.kind, a.cause) for a in actions(later)] == [("create", "granted")]


def test_offboarded_person_loses_access(world: World) -> None:
    world.add_grant("bob", grantee="bob")
    world.run()
    policy = (world.repo.root / "policies/main.yaml").read_text()
    world.repo.write("policies/main.yaml", policy.replace(
        "bob:\n    email: bob@example.com\n",
        "bob:\n    active: false\n    email: bob@example.com\n"))
    world.repo.commit("bob left")
    run = world.run()
    assert [(a.login, a.kind, a.cause) for a in actions(run)] == [
        (world.login("bob"), "revoke", "offboarded")]
    assert world.role(world.login("bob")) is None


def test_invalid_policy_only_takes_access_away(world: World) -> None:
    world.add_grant("alice", expires=utc(seconds=2))
    world.add_grant("bob", grantee="bob", expires=utc(hours=2))
    world.run()
    time.sleep(2.5)
    world.add_grant("alice-new", expires=utc(hours=1), access="readwrite")
    world.repo.write("policies/broken.yaml", "access:\n  oops: {roles: [x]}\n")
    world.repo.commit("broken policy")
    run = world.run()
    assert run.failed
    assert [(a.login, a.kind, a.cause) for a in actions(run)] == [
        (world.login(), "revoke", "expired")]
    assert world.role(world.login("bob")) is not None
    assert world.role(world.login("alice", "readwrite")) is None


def test_invalid_grant_is_not_granted_and_other_work_proceeds(world: World) -> None:
    world.add_grant("bob", grantee="bob")
    world.repo.write("grants/db1/alice.yaml",
                     "grantee: alice\ntarget: db1\naccess: readonly\n"
                     "expires: 2030-01-01T00:00:00\nreason: no zone\n")
    world.repo.commit("bad grant")
    run = world.run()
    assert run.failed
    assert any("must include a time zone" in p.message for p in run.problems)
    assert [a.login for a in actions(run)] == [world.login("bob")]
    assert world.role(world.login()) is None


def test_missing_group_role_is_reported_and_skipped(world: World) -> None:
    world.add_grant()
    with world.server.conn() as c:
        c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(world.group)))
    run = world.run()
    assert run.failed and actions(run) == []
    assert any("does not exist" in p.message for p in run.problems)


def test_unreachable_targets_are_reported_and_the_rest_proceeds(world: World) -> None:
    base = (world.repo.root / "policies/main.yaml").read_text()
    extra = ("  down:\n    engine: postgres\n    dsn_env: JG_DOWN\n"
             "  unset:\n    engine: postgres\n    dsn_env: JG_UNSET_NEVER\n")
    world.repo.write("policies/main.yaml", base.replace("targets:\n", "targets:\n" + extra, 1))
    world.repo.commit("more targets")
    world.add_grant()
    env = {**world.env, "JG_DOWN": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"}
    run = world.run(env=env)
    status = {t.target.name: (t.status, t.error or "") for t in run.targets}
    assert status["db1"] == ("ok", "")
    assert status["down"][0] == "failed" and "cannot connect" in status["down"][1]
    assert status["unset"][0] == "failed" and "JG_UNSET_NEVER is not set" in status["unset"][1]
    assert run.failed
    assert world.role(world.login()) is not None


def test_a_held_lock_makes_apply_wait_its_turn(world: World) -> None:
    world.add_grant()
    run_target = world.run(execute=False).targets[0].target
    with world.server.conn() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key(run_target)])
        run = world.run()
        assert run.failed and "holds the lock" in (run.targets[0].error or "")
        assert world.role(world.login()) is None
    assert not world.run().failed
    assert world.role(world.login()) is not None


def test_hostile_group_role_names_are_quoted(world: World) -> None:
    hostile = world.group + '"; DROP ROLE postgres; --'
    with world.server.conn() as c:
        c.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(hostile)))
    try:
        text = (world.repo.root / "policies/main.yaml").read_text()
        world.repo.write("policies/main.yaml", text.replace(
            f"- {world.group}", "- '" + hostile.replace("'", "''") + "'"))
        world.repo.commit("hostile group")
        world.add_grant(reason="'); DROP TABLE users; -- ☃ \"quoted\"")
        run = world.run()
        assert not run.failed, run.problems
        role = world.role(world.login())
        assert role is not None and role["member_of"] == [hostile]
    finally:
        world.cleanup()
        with world.server.conn() as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(hostile)))


def test_admin_option_on_a_membership_is_drift(world: World) -> None:
    """WITH ADMIN OPTION would let the login hand its group to others, who would keep it."""
    world.add_grant()
    world.run()
    with world.server.conn() as c:
        c.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
            sql.Identifier(world.group), sql.Identifier(world.login())))
    run = world.run()
    assert not run.failed, run.targets[0].results
    [update] = actions(run)
    assert f"revoke admin option on {world.group}" in update.changes.describe()
    with world.server.conn() as c:
        row = c.execute("SELECT bool_or(admin_option) FROM pg_auth_members m JOIN pg_roles r"
                        " ON r.oid = m.member WHERE r.rolname = %s", [world.login()]).fetchone()
    assert row == (False,)
    assert actions(world.run()) == []


def test_per_database_role_settings_are_drift(world: World) -> None:
    """ALTER ROLE ... IN DATABASE d SET lives in pg_db_role_setting, not in rolconfig."""
    world.add_grant()
    world.run()
    with world.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} IN DATABASE postgres SET search_path = 'evil'").format(
            sql.Identifier(world.login())))
    run = world.run()
    assert not run.failed, run.targets[0].results
    [update] = actions(run)
    assert "role settings" in update.changes.describe() and update.cause == "drift"
    with world.server.conn() as c:
        row = c.execute("SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r"
                        " ON r.oid = s.setrole WHERE r.rolname = %s", [world.login()]).fetchone()
    assert row == (0,)
    assert actions(world.run()) == []


def test_a_session_that_outlives_terminate_is_never_a_reported_success(world: World) -> None:
    """A backend that does not end within pg_terminate_backend's 5 seconds (here: stopped)
    makes it return false, and DROP ROLE would not wait for it: the session would live on as a
    role that no longer exists. The login stops after the strip instead, locked out and
    without memberships, the run fails, and the next run drops it once the session is gone."""
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    assert not world.run().failed
    login = world.login()
    session = psycopg.connect(world.server.login_dsn(login, password), autocommit=True)
    pid = session.info.backend_pid
    world.repo.remove("grants/db1/alice.yaml")
    world.repo.commit("end alice's access")
    os.kill(pid, signal.SIGSTOP)
    try:
        run = world.run()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [(a.kind, a.cause) for a in actions(run)] == [("revoke", "removed")]
    [result] = run.targets[0].results
    assert run.failed and result.sessions_ended == 0
    assert result.error is not None and f"pid {pid}" in result.error
    role = world.role(login)
    assert role is not None and not role["rolcanlogin"] and role["member_of"] == []
    with pytest.raises(psycopg.OperationalError):  # SIGTERM was pending: it ends on waking
        session.execute("SELECT 1")
    session.close()
    again = world.run()
    assert not again.failed, again.targets[0].results
    assert [(a.kind, a.cause) for a in actions(again)] == [("revoke", "removed")]
    assert world.role(login) is None
