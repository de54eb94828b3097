"""Access-level settings as an attack: a name or value crafted for SQL injection, a setting that
would widen a login's access or blind the audit, and a login whose settings are changed out of
band."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.engines.pg_settings import setting_name
from tests.integration.conftest import World
from tests.integration.test_role_settings import actions, config, line_of, with_settings


def roles_on_server(world: World) -> list[tuple[str, bool]]:
    with world.server.conn() as c:
        return [(str(n), bool(s)) for n, s in c.execute(
            "SELECT rolname, rolsuper FROM pg_roles WHERE starts_with(rolname, %s)",
            [world.prefix])]


@pytest.mark.parametrize("name", [
    "statement_timeout = 0; ALTER ROLE postgres NOSUPERUSER; --",
    'work_mem" = 1; DROP ROLE x; --',
    "pgaudit.log.extra",
    "Statement_Timeout",  # PostgreSQL folds case; the schema takes one spelling
    "x" * 70,
    "a.",
])
def test_a_setting_name_crafted_for_injection_is_refused_by_the_schema(
        world: World, name: str) -> None:
    with_settings(world, {name: "1"})
    world.add_grant()
    run = world.run()
    assert run.failed
    assert any("main.yaml" in p.path and "settings" in p.message for p in run.problems), \
        run.problems
    assert roles_on_server(world) == []  # nothing changed on the server


def test_a_name_never_reaches_sql_unquoted() -> None:
    """The second wall behind the schema: each part is quoted by psycopg, and a name outside
    the schema's pattern raises instead of being rendered."""
    assert setting_name("pgaudit.log") == '"pgaudit"."log"'
    with pytest.raises(ValueError, match="not a parameter name"):
        setting_name('x" = 1; DROP ROLE y; --')


@pytest.mark.parametrize("value", [
    "x'; ALTER ROLE {login} SUPERUSER; --",
    "x\\'; ALTER ROLE {login} SUPERUSER; --",
    "$$; ALTER ROLE {login} SUPERUSER; $$",
])
def test_a_value_crafted_for_injection_is_stored_as_text(world: World, value: str) -> None:
    """application_name takes any text: the value goes through the driver as a literal and
    comes back from the catalog exactly as written; the login never becomes a superuser."""
    text = value.format(login=world.login())
    with_settings(world, {"application_name": text})
    world.add_grant()
    run = world.run()
    assert not run.failed, run.problems
    assert config(world, world.login()) == {"application_name": text}
    assert roles_on_server(world) == [(world.login(), False)]
    assert actions(world.run()) == []


def test_a_value_with_a_control_character_is_refused_by_the_schema(world: World) -> None:
    with_settings(world, {"application_name": "a\nALTER ROLE x SUPERUSER"})
    world.add_grant()
    run = world.run()
    assert run.failed and roles_on_server(world) == []


@pytest.mark.parametrize(("name", "value"), [
    ("role", "postgres"),
    ("session_authorization", "postgres"),
    ("search_path", "attacker, public"),
    ("session_replication_role", "replica"),
    ("session_preload_libraries", "/tmp/evil.so"),
    ("local_preload_libraries", "evil"),
    ("lo_compat_privileges", True),
    ("pgaudit.role", "nobody"),
])
def test_a_setting_that_would_widen_access_is_refused_at_validate_time(
        world: World, name: str, value: Any) -> None:
    with_settings(world, {"statement_timeout": "5s", name: value})
    world.add_grant()
    run = world.run()
    assert run.failed
    line = line_of(world, name + ":")
    assert any(str(p).startswith(f"policies/main.yaml:{line}: access.readonly.settings.{name}:"
                                 f" refused: it ") for p in run.problems), run.problems
    assert roles_on_server(world) == []


def test_mysql_account_limits_are_refused_on_a_postgres_target(world: World) -> None:
    with_settings(world, {"MAX_QUERIES_PER_HOUR": 100})
    path = world.add_grant()
    run = world.run()
    assert run.failed
    assert any(p.path == path and "MySQL/MariaDB account limits" in p.message
               for p in run.problems), run.problems
    assert roles_on_server(world) == []


def test_settings_changed_out_of_band_are_put_back(world: World) -> None:
    """PostgreSQL lets a login ALTER ROLE itself SET a user-context parameter (statement_timeout,
    search_path), though not a superuser one (log_statement); an administrator can change any.
    Either way the next apply sets back what differs and resets what is extra, as drift."""
    password = new_password()
    with_settings(world, {"statement_timeout": "5s", "log_statement": "all"})
    world.add_grant(verifier=scram_sha256_verifier(password))
    assert not world.run().failed
    login = sql.Identifier(world.login())
    with psycopg.connect(world.server.login_dsn(world.login(), password),
                         autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = 0").format(login))
        conn.execute(sql.SQL("ALTER ROLE {} SET search_path = 'attacker, public'").format(login))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("ALTER ROLE {} SET log_statement = 'none'").format(login))
    with world.server.conn() as c:
        c.execute(sql.SQL('ALTER ROLE {} SET "weird.Name" = 1').format(login))
    assert config(world, world.login())["statement_timeout"] == "0"
    run = world.run()
    assert not run.failed, run.problems
    [update] = actions(run)
    assert update.cause == "drift"
    assert {"set statement_timeout = 5s", "reset search_path"} <= set(update.changes.describe())
    assert config(world, world.login()) == {"statement_timeout": "5s", "log_statement": "all"}
    assert actions(world.run()) == []
