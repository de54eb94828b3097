"""`jitgrant doctor` on PostgreSQL: the least-privilege set-ups of docs/least-privilege.md pass;
each privilege a revocation's steps need, taken away, is named with the statement that gives it
back; and doctor changes nothing, holding no lock once it is done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from reconciler.cli import main
from reconciler.engines import postgres
from reconciler.model import Target
from tests.conftest import PgServer
from tests.integration.conftest import World
from tests.integration.test_least_privilege import least_privilege_world

# What docs/least-privilege.md adds on PostgreSQL 15 and later: logging stays quiet.
LOG_GRANT = ("GRANT SET ON PARAMETER log_statement, log_min_error_statement, "
             "log_min_duration_statement TO {}")


def doctor(w: World, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """doctor --format json on the world's target: (exit code, the checks, all output). The
    reconciler's password never shows in it."""
    result = CliRunner().invoke(main, ["doctor", "--repo", str(w.repo.root), "--format", "json",
                                       *args], env=w.env, catch_exceptions=False)
    output = result.stdout + result.stderr
    password = psycopg.conninfo.conninfo_to_dict(w.admin_dsn).get("password")
    assert not password or str(password) not in output
    checks = json.loads(result.stdout)["checks"] if result.stdout.startswith("{") else []
    return result.exit_code, checks, output


def problems(checks: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(c["severity"], c["check"], c["fix"]) for c in checks
            if c["severity"] in ("warning", "error")]


def admin_of(w: World) -> str:
    return w.prefix + "reconciler"


@pytest.fixture
def lp(pg: PgServer, tmp_path: Path) -> Iterator[World]:
    """The docs' set-up for the server's version (15, or 18 for 16 and later)."""
    with least_privilege_world(pg, tmp_path / "repo") as w:
        with pg.conn() as c:
            c.execute(sql.SQL(LOG_GRANT).format(sql.Identifier(admin_of(w))))
        yield w


def test_the_documented_set_ups_pass(lp: World) -> None:
    code, checks, _ = doctor(lp)
    assert problems(checks) == [] and code == 0, checks
    assert {c["check"] for c in checks} >= {"TLS", "lock", "audit branch"}


def _as_superuser(w: World, statement: str, *names: str) -> None:
    with w.server.conn() as c:
        c.execute(sql.SQL(statement).format(*(sql.Identifier(n) for n in names)))


def test_end_sessions_needs_pg_signal_backend(lp: World) -> None:
    admin = admin_of(lp)
    _as_superuser(lp, "REVOKE pg_signal_backend FROM {}", admin)
    code, checks, _ = doctor(lp)
    assert code == 1
    assert problems(checks) == [("error", "end sessions",
                                 f'GRANT pg_signal_backend TO "{admin}"')]


def test_seeing_sessions_whole_needs_pg_read_all_stats(lp: World) -> None:
    """Without it the audit cannot tell when access was used: a warning, not an error (no
    revocation step needs it)."""
    admin = admin_of(lp)
    _as_superuser(lp, "REVOKE pg_read_all_stats FROM {}", admin)
    code, checks, _ = doctor(lp)
    assert code == 2
    assert problems(checks) == [("warning", "see sessions",
                                 f'GRANT pg_read_all_stats TO "{admin}"')]


def test_reassign_owned_needs_the_receiving_roles_privileges(lp: World) -> None:
    admin = admin_of(lp)
    _as_superuser(lp, "REVOKE {} FROM {}", lp.owner, admin)
    code, checks, _ = doctor(lp)
    tail = " WITH INHERIT TRUE" if lp.server.version >= 160000 else ""
    assert code == 1
    assert problems(checks) == [("error", "reassign owned objects",
                                 f'GRANT "{lp.owner}" TO "{admin}"{tail}')]


def test_reassign_owned_needs_every_database(lp: World) -> None:
    """A login may own objects in any database: the reconciler must connect to each."""
    admin = admin_of(lp)
    database = lp.create_database()
    _as_superuser(lp, "REVOKE CONNECT ON DATABASE {} FROM PUBLIC", database)
    code, checks, _ = doctor(lp)
    assert code == 1
    assert problems(checks) == [("error", "reassign owned objects",
                                 f'GRANT CONNECT ON DATABASE "{database}" TO "{admin}"')]


def test_dropping_the_login_needs_createrole(lp: World) -> None:
    admin = admin_of(lp)
    _as_superuser(lp, "ALTER ROLE {} NOCREATEROLE", admin)
    code, checks, _ = doctor(lp)
    fix = f'ALTER ROLE "{admin}" CREATEROLE'
    assert code == 1
    assert problems(checks) == [("warning", "create a login", fix),
                                ("error", "drop the login", fix)]


def test_revoking_a_group_role_needs_admin_option(lp: World) -> None:
    """16 and later: ADMIN OPTION on each group role (before 16, CREATEROLE, tested above)."""
    if lp.server.version < 160000:
        pytest.skip("before 16 CREATEROLE grants and revokes any non-superuser role")
    admin = admin_of(lp)
    _as_superuser(lp, "REVOKE ADMIN OPTION FOR {} FROM {}", lp.group, admin)
    code, checks, _ = doctor(lp)
    assert code == 1
    assert problems(checks) == [("error", f"group role {lp.group}",
                                 f'GRANT "{lp.group}" TO "{admin}" WITH ADMIN OPTION, '
                                 "INHERIT FALSE, SET FALSE")]


def test_a_login_made_by_someone_else_cannot_be_dropped(lp: World) -> None:
    """16 and later: a login in the namespace made by a superuser gives the reconciler no
    ADMIN on it."""
    if lp.server.version < 160000:
        pytest.skip("before 16 CREATEROLE drops any non-superuser role")
    admin, login = admin_of(lp), lp.login()
    _as_superuser(lp, "CREATE ROLE {} LOGIN", login)
    code, checks, _ = doctor(lp)
    assert code == 1
    assert problems(checks) == [("error", "drop the login",
                                 f'GRANT "{login}" TO "{admin}" WITH ADMIN OPTION, '
                                 "INHERIT FALSE, SET FALSE")]


def test_statement_logging_is_a_warning(lp: World) -> None:
    admin = admin_of(lp)
    _as_superuser(lp, "REVOKE SET ON PARAMETER log_min_error_statement FROM {}", admin)
    code, checks, _ = doctor(lp)
    assert code == 2
    assert problems(checks) == [("warning", "statement logging",
                                 f'GRANT SET ON PARAMETER log_min_error_statement TO "{admin}"')]


def test_a_missing_group_role_is_a_warning(lp: World) -> None:
    lp.write_policy(reassign_owned_to=lp.owner)
    with lp.server.conn() as c:
        c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(lp.group)))
    code, checks, _ = doctor(lp)
    assert code == 2
    assert problems(checks) == [("warning", f"group role {lp.group}",
                                 f'CREATE ROLE "{lp.group}" NOLOGIN')]


def test_an_unset_dsn_and_an_unreachable_server_are_errors(lp: World,
                                                           tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["doctor", "--repo", str(lp.repo.root)], env={},
                                catch_exceptions=False)
    assert result.exit_code == 1
    assert f"db1: error: reachable: environment variable {lp.dsn_env} is not set" \
        in result.stdout
    password = "pw-" + lp.prefix + "x"
    dsn = lp.server.login_dsn(admin_of(lp), password, "no_such_database_" + lp.prefix)
    result = CliRunner().invoke(main, ["doctor", "--repo", str(lp.repo.root)],
                                env={lp.dsn_env: dsn}, catch_exceptions=False)
    assert result.exit_code == 1 and "db1: error: reachable: " in result.stdout
    assert password not in result.stdout + result.stderr


# -- doctor changes nothing --------------------------------------------------------------------

def _catalog(w: World) -> list[Any]:
    """This world's roles, memberships, settings, parameter grants, database ACLs and lock
    (the machine's server is shared with other tests)."""
    mine = {"prefix": w.prefix, "roles": [w.group, w.owner, w.member]}
    role = "(starts_with({0}, %(prefix)s) OR {0} = ANY(%(roles)s))"
    target = Target("db1", "postgres", w.dsn_env, role_prefix=w.prefix)
    unsigned = postgres.lock_key(target) & 0xFFFFFFFFFFFFFFFF
    queries = [
        "SELECT rolname, rolsuper, rolcreaterole, rolcanlogin, rolinherit, rolvaliduntil, "
        "rolconnlimit FROM pg_roles WHERE " + role.format("rolname") + " ORDER BY 1",
        "SELECT roleid::regrole::text, member::regrole::text, admin_option FROM pg_auth_members "
        "WHERE " + role.format("member::regrole::text") + " OR "
        + role.format("roleid::regrole::text") + " ORDER BY 1, 2",
        "SELECT datname, datacl::text FROM pg_database WHERE datname = ANY(%(databases)s)",
        "SELECT setdatabase, setconfig::text FROM pg_db_role_setting WHERE "
        + role.format("setrole::regrole::text") + " ORDER BY 1, 2",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %(high)s::oid "
        "AND objid = %(low)s::oid"]
    if w.server.version >= 150000:
        queries.append("SELECT parname, paracl::text FROM pg_parameter_acl "
                       "WHERE strpos(paracl::text, %(prefix)s) > 0 ORDER BY 1")
    params = {**mine, "databases": [*w.databases, "postgres"], "high": unsigned >> 32,
              "low": unsigned & 0xFFFFFFFF}
    with w.server.conn() as c:
        return [c.execute(q, params).fetchall() for q in queries]


def test_doctor_changes_nothing(lp: World) -> None:
    """Hostile: every role, membership, database ACL, per-role setting, parameter grant and
    advisory lock is the same before and after, also when problems are found."""
    lp.add_grant()
    assert not lp.run().failed
    lp.create_database()
    _as_superuser(lp, "REVOKE pg_signal_backend FROM {}", admin_of(lp))
    before = _catalog(lp)
    for _ in range(2):
        assert doctor(lp)[0] == 1
    assert _catalog(lp) == before and before[0]


def test_the_lock_is_tried_and_released(lp: World) -> None:
    """The engine's lock check, on a connection kept open: no advisory lock is left behind."""
    target = Target("db1", "postgres", lp.dsn_env, role_prefix=lp.prefix)
    with psycopg.connect(lp.admin_dsn, autocommit=True) as conn:
        assert postgres.try_lock(conn, target) is None
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND pid = pg_backend_pid()").fetchone()
        assert row == (0,)


def test_a_held_lock_is_a_warning_and_stays_held(lp: World) -> None:
    target = Target("db1", "postgres", lp.dsn_env, role_prefix=lp.prefix)
    with lp.server.conn() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [postgres.lock_key(target)])
        code, checks, _ = doctor(lp)
        assert code == 2
        assert [c["check"] for c in checks if c["severity"] == "warning"] == ["lock"]
        row = holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND pid = pg_backend_pid() AND granted").fetchone()
        assert row == (1,)  # doctor ended nobody's session
