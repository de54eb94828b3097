"""Overdue revocations and the run's metrics, with the real commands on the machine's
PostgreSQL: `plan` and `status` name a login usable past its grant's end, `apply` exits 1
while it cannot revoke it, and `--metrics-file` writes what the audit record of the same run
says, atomically."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from tests.cli.conftest import PG_DSN, Namespace, jitgrant
from tests.helpers import AccessRepo, grant, stamp, utc

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(path: Path) -> Samples:
    """Every sample of a metrics file, read with prometheus_client's own parser."""
    found: Samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def total(found: Samples, name: str) -> float:
    return sum(v for (n, _), v in found.items() if n == name)


def audit_of(repo: AccessRepo, output: str) -> dict[str, Any]:
    rel = output.rsplit("audit record: ", 1)[1].split()[0]
    record: dict[str, Any] = json.loads((repo.root / rel).read_text())
    return record


def ended_login(ns: Namespace, repo: AccessRepo) -> str:
    """alice's grant ended two days ago, and her login, marked as jitgrant's, can still log
    in: no VALID UNTIL (as if a run never revoked it and someone cleared the expiry)."""
    repo.write("grants/db1/alice.yaml", grant(expires=utc(days=-2)))
    then = stamp(utc(days=-2, hours=-2))  # merged before it ended (else it is invalid)
    repo.commit("alice's grant", GIT_AUTHOR_DATE=then, GIT_COMMITTER_DATE=then)
    login = ns.login()
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        c.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
            sql.Identifier(login), sql.Literal("jitgrant: db1: alice (readonly) state x")))
    return login


@contextmanager
def row_lock_on(login: str) -> Iterator[None]:
    """Another process's open transaction that changed the login: its pg_authid row stays
    locked, so apply's lock-out waits, gives up and the revocation fails, for the block."""
    with psycopg.connect(PG_DSN) as holder:
        holder.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 5").format(sql.Identifier(login)))
        try:
            yield
        finally:
            holder.rollback()


def test_plan_and_status_name_an_overdue_login_and_apply_revokes_it(
        namespace: Namespace, pg_repo: AccessRepo, tmp_path: Path) -> None:
    login = ended_login(namespace, pg_repo)
    root = str(pg_repo.root)
    plan = jitgrant("plan", "--repo", root, env=namespace.env)
    assert plan.exit_code == 2, plan.output
    assert f"overdue: target db1: login {login} (alice, readonly) can still log in 2d" \
        in plan.stdout
    assert "1 revocation overdue" in plan.stdout
    lenient = jitgrant("plan", "--repo", root, "--overdue-grace", "3d", env=namespace.env)
    assert "overdue" not in lenient.stdout
    status = jitgrant("status", "--repo", root, env=namespace.env)
    assert status.exit_code == 0 and f"overdue: target db1: login {login}" in status.stdout
    as_json = json.loads(jitgrant("status", "--repo", root, "--format", "json",
                                  env=namespace.env).stdout)
    assert [o["login"] for o in as_json["overdue"]] == [login]

    metrics = tmp_path / "jitgrant.prom"
    applied = jitgrant("apply", "--repo", root, "--metrics-file", str(metrics),
                       env=namespace.env)
    assert applied.exit_code == 0, applied.output
    assert "overdue" not in applied.output and namespace.role(login) is None
    found = samples(metrics)
    record = audit_of(pg_repo, applied.stdout)
    assert [(a["action"], a["cause"], a["status"]) for a in record["actions"]] == \
        [("revoke", "expired", "ok")]
    assert value(found, "jitgrant_actions_total", target="db1", kind="revoke",
                 cause="expired") == 1
    assert total(found, "jitgrant_actions_total") == len(record["actions"])
    assert total(found, "jitgrant_action_failures_total") == 0
    assert value(found, "jitgrant_revocations_overdue", target="db1") == 0
    assert value(found, "jitgrant_target_up", target="db1") == 1
    succeeded = value(found, "jitgrant_target_last_success_timestamp_seconds", target="db1")
    assert succeeded == value(found, "jitgrant_last_run_timestamp_seconds")
    assert value(found, "jitgrant_logins", target="db1", state="ended") == 0

    # The server cannot be reached: the target is down, its last success is carried over.
    down = jitgrant("apply", "--repo", root, "--metrics-file", str(metrics),
                    env={namespace.dsn_env: "postgresql://root@127.0.0.1:1/postgres"})
    assert down.exit_code == 1
    again = samples(metrics)
    assert value(again, "jitgrant_target_up", target="db1") == 0
    assert value(again, "jitgrant_target_last_success_timestamp_seconds",
                 target="db1") == succeeded
    assert value(again, "jitgrant_actions_total", target="db1", kind="revoke",
                 cause="expired") == 1  # a counter: kept across runs
    assert value(again, "jitgrant_revocations_overdue", target="db1") == 0  # carried over


def test_apply_exits_1_naming_the_login_it_could_not_revoke(
        namespace: Namespace, pg_repo: AccessRepo, tmp_path: Path) -> None:
    login = ended_login(namespace, pg_repo)
    metrics = tmp_path / "jitgrant.prom"
    summary = tmp_path / "summary.md"
    github = {**namespace.env, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    with row_lock_on(login):
        failed = jitgrant("apply", "--repo", str(pg_repo.root), "--metrics-file", str(metrics),
                          env=github)
    assert failed.exit_code == 1, failed.output
    assert f"jitgrant: error: overdue: target db1: login {login} (alice, readonly) can " \
           f"still log in 2d" in failed.stderr
    assert "jitgrant: error: 1 revocation overdue" in failed.stderr
    role = namespace.role(login)
    assert role is not None and role["rolcanlogin"]
    annotations = [line for line in failed.stdout.splitlines() if line.startswith("::error ")]
    assert any(line.startswith("::error title=jitgrant%3A revocation overdue::target db1: "
                               f"login {login}") for line in annotations), annotations
    assert any(line.startswith(f"::error title=jitgrant apply%3A target db1::revoke {login} "
                               "failed: ") for line in annotations), annotations
    text = summary.read_text()
    assert "| db1 | postgres | failed | 1 | 1 |" in text
    assert "**1 revocation(s) overdue:**" in text and login in text

    found = samples(metrics)
    record = audit_of(pg_repo, failed.stdout)
    statuses = [a["status"] for a in record["actions"]]
    assert statuses == ["failed"]
    assert total(found, "jitgrant_actions_total") == len(statuses)
    assert value(found, "jitgrant_action_failures_total", target="db1", kind="revoke") == 1
    assert value(found, "jitgrant_revocations_overdue", target="db1") == 1
    assert value(found, "jitgrant_logins", target="db1", state="ended") == 1
    assert value(found, "jitgrant_target_up", target="db1") == 0
    assert value(found, "jitgrant_target_last_success_timestamp_seconds", target="db1") is None

    # The lock is gone: the next run revokes it, exits 0, and the counters go on.
    done = jitgrant("apply", "--repo", str(pg_repo.root), "--metrics-file", str(metrics),
                    env=namespace.env)
    assert done.exit_code == 0, done.output
    assert namespace.role(login) is None
    after = samples(metrics)
    assert value(after, "jitgrant_actions_total", target="db1", kind="revoke",
                 cause="expired") == 2
    assert value(after, "jitgrant_action_failures_total", target="db1", kind="revoke") == 1
    assert value(after, "jitgrant_revocations_overdue", target="db1") == 0


def test_an_unwritable_metrics_file_is_one_error_after_the_databases_were_reconciled(
        namespace: Namespace, pg_repo: AccessRepo, tmp_path: Path) -> None:
    pg_repo.write("grants/db1/alice.yaml", grant())
    pg_repo.commit("alice")
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--metrics-file",
                      str(not_a_folder / "jitgrant.prom"), env=namespace.env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"jitgrant: error: --metrics-file {not_a_folder / 'jitgrant.prom'}: cannot write it: "
        "Not a directory"]
    assert namespace.role(namespace.login()) is not None  # reconciled all the same
    assert "audit record: " in result.stdout


def test_the_metrics_file_is_replaced_whole_or_not_at_all(
        namespace: Namespace, pg_repo: AccessRepo, tmp_path: Path) -> None:
    """prometheus_client writes PATH.<pid>.<thread id> beside PATH, then renames it over
    PATH. With that temporary name taken (a folder), the old file stays exactly as it was."""
    folder = tmp_path / "textfile"
    folder.mkdir()
    metrics = folder / "jitgrant.prom"
    metrics.write_text("# the previous run's file\n")
    temporary = folder / f"jitgrant.prom.{os.getpid()}.{threading.current_thread().ident}"
    temporary.mkdir()
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--metrics-file", str(metrics),
                      env=namespace.env)
    assert result.exit_code == 1
    assert [line for line in result.stderr.splitlines() if "--metrics-file" in line] == [
        f"jitgrant: error: --metrics-file {metrics}: cannot write it: Is a directory"]
    assert metrics.read_text() == "# the previous run's file\n"
    temporary.rmdir()
    written = jitgrant("apply", "--repo", str(pg_repo.root), "--metrics-file", str(metrics),
                       env=namespace.env)
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in folder.iterdir()) == ["jitgrant.prom"]  # no temporary left
    assert value(samples(metrics), "jitgrant_target_up", target="db1") == 1


@pytest.mark.parametrize("grace", ["soon", "0m"])
def test_a_bad_grace_changes_nothing(namespace: Namespace, pg_repo: AccessRepo,
                                     grace: str) -> None:
    pg_repo.write("grants/db1/alice.yaml", grant())
    pg_repo.commit("alice")
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--overdue-grace", grace,
                      env=namespace.env)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"jitgrant: error: --overdue-grace '{grace}': ")
    assert namespace.role(namespace.login()) is None


def test_doctor_names_an_overdue_revocation_and_changes_nothing(
        namespace: Namespace, pg_repo: AccessRepo) -> None:
    login = ended_login(namespace, pg_repo)
    found = jitgrant("doctor", "--repo", str(pg_repo.root), env=namespace.env)
    assert found.exit_code == 1, found.output
    [line] = [x for x in found.stdout.splitlines() if "revocations overdue" in x]
    assert line.startswith(f"db1: error: revocations overdue: login {login} (alice, readonly)")
    assert "fix: jitgrant apply --target db1" in line
    assert namespace.role(login) is not None  # doctor revoked nothing


def test_plan_json_and_markdown_list_an_overdue_login(namespace: Namespace,
                                                      pg_repo: AccessRepo) -> None:
    login = ended_login(namespace, pg_repo)
    root = str(pg_repo.root)
    as_json = jitgrant("plan", "--repo", root, "--format", "json", env=namespace.env)
    assert as_json.exit_code == 2, as_json.output
    [found] = json.loads(as_json.stdout)["overdue"]
    assert (found["target"], found["login"], found["grantee"]) == ("db1", login, "alice")
    markdown = jitgrant("plan", "--repo", root, "--format", "markdown", env=namespace.env)
    assert "#### Revocations overdue" in markdown.stdout
    assert "1 revocation overdue" in markdown.stdout
