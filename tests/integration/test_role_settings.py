"""PostgreSQL: an access level's `settings:` become its logins' role settings, are checked
against the server's pg_settings at plan time, and are drift-repaired."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.apply import Run
from reconciler.credentials import new_password, scram_sha256_verifier
from tests.helpers import policy
from tests.integration.conftest import World


def actions(run: Run) -> list[Any]:
    return [a for t in run.targets for a in (t.plan.actions if t.plan else ())]


def with_settings(world: World, settings: dict[str, Any], level: str = "readonly") -> None:
    data = policy(dsn_env=world.dsn_env, prefix=world.prefix, groups=(world.group,))
    data["access"][level]["settings"] = settings
    world.repo.write("policies/main.yaml", data)
    world.repo.commit("settings")


def config(world: World, login: str) -> dict[str, str]:
    """The login's role settings, read the way an administrator would (setdatabase = 0)."""
    with world.server.conn() as c:
        row = c.execute("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r"
                        " ON r.oid = s.setrole WHERE r.rolname = %s AND s.setdatabase = 0",
                        [login]).fetchone()
    return dict(e.partition("=")[::2] for e in (row[0] if row else []))


def line_of(world: World, text: str) -> int:
    lines = (world.repo.root / "policies/main.yaml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def test_settings_are_set_on_create_and_shown_in_the_audit(world: World) -> None:
    with_settings(world, {"statement_timeout": "5s", "default_transaction_read_only": True,
                          "idle_in_transaction_session_timeout": 60000})
    world.add_grant()
    run = world.run()
    assert not run.failed, run.problems
    assert config(world, world.login()) == {
        "statement_timeout": "5s", "default_transaction_read_only": "on",
        "idle_in_transaction_session_timeout": "60000"}
    assert actions(world.run()) == []  # read back as written: in sync


def test_drift_in_settings_is_repaired(world: World) -> None:
    """An administrator (or any other path) changes the login's settings out of band: the
    next apply sets back what differs and resets what is extra, as drift."""
    with_settings(world, {"statement_timeout": "5s"})
    world.add_grant()
    assert not world.run().failed
    login = sql.Identifier(world.login())
    with world.server.conn() as c:
        c.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = 0").format(login))
        c.execute(sql.SQL("ALTER ROLE {} SET work_mem = '1GB'").format(login))
    run = world.run()
    assert not run.failed, run.problems
    [update] = actions(run)
    assert update.cause == "drift"
    assert update.changes.describe() == ["set statement_timeout = 5s", "reset work_mem"]
    assert config(world, world.login()) == {"statement_timeout": "5s"}
    assert actions(world.run()) == []


def test_a_changed_setting_is_a_change_of_grant(world: World) -> None:
    with_settings(world, {"statement_timeout": "5s"})
    world.add_grant()
    assert not world.run().failed
    with_settings(world, {"statement_timeout": "10s", "log_statement": "all"})
    [update] = actions(world.run())
    assert update.cause == "granted"
    assert config(world, world.login()) == {"statement_timeout": "10s", "log_statement": "all"}
    with_settings(world, {})  # settings removed from the level: reset on the login
    [update] = actions(world.run())
    assert set(update.changes.describe()) >= {"reset statement_timeout", "reset log_statement"}
    assert config(world, world.login()) == {}


@pytest.mark.parametrize(("name", "value", "says"), [
    ("no_such_parameter", "1", "not a parameter of this server"),
    ("nosuchlib.level", "1", "its library is not loaded"),
    ("shared_buffers", "128MB", "cannot be set per role"),
    ("statement_timeout", "soon", "takes a number"),
    ("statement_timeout", "-5", "is outside"),
    ("log_statement", "everything", "takes one of"),
    ("default_transaction_read_only", "maybe", "takes on or off"),
])
def test_a_setting_the_server_does_not_take_refuses_the_level(world: World, name: str,
                                                               value: str, says: str) -> None:
    """Fail closed: the problem is reported at the setting's policy line, the login is not
    created, and nothing on the server changes."""
    with_settings(world, {"statement_timeout": "5s", name: value})
    path = world.add_grant()
    run = world.run()
    assert run.failed
    lines = [str(p) for p in run.problems]
    assert f"policies/main.yaml:{line_of(world, name + ':')}: access.readonly.settings.{name}: " \
        in "\n".join(lines), lines
    assert any(says in line for line in lines), lines
    assert any(line.startswith(f"{path}:1: ") and "grant skipped" in line for line in lines)
    assert world.role(world.login()) is None


def test_an_existing_login_is_left_as_it_is_when_its_level_gets_a_bad_setting(
        world: World) -> None:
    with_settings(world, {"statement_timeout": "5s"})
    world.add_grant()
    assert not world.run().failed
    with_settings(world, {"statement_timeout": "5s", "no_such_parameter": "1"})
    run = world.run()
    assert run.failed and actions(run) == []
    assert world.role(world.login()) is not None
    assert config(world, world.login()) == {"statement_timeout": "5s"}


def test_read_only_by_setting_is_a_seatbelt_the_login_can_unbuckle(world: World) -> None:
    """What the docs say: default_transaction_read_only keeps a login from writing by mistake,
    but the login may SET it back itself; only grants stop it."""
    password = new_password()
    with_settings(world, {"default_transaction_read_only": True, "statement_timeout": "5s"})
    world.add_grant(verifier=scram_sha256_verifier(password))
    assert not world.run().failed
    with psycopg.connect(world.server.login_dsn(world.login(), password),
                         autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("SET default_transaction_read_only = off")  # allowed: a seatbelt
        conn.execute("CREATE TEMP TABLE t (x int)")
        conn.execute("SET statement_timeout = 0")  # so is this one
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET log_statement = 'none'")  # a superuser setting is not its own
