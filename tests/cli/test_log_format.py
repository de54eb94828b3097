"""`--log-format json`: one JSON object per event on stderr (run, targets, actions, with the
run id and timings), for log collectors; stdout as without it, and the text default unchanged.
Real PostgreSQL (the machine's), real git."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler import events
from reconciler.credentials import scram_sha256_verifier
from reconciler.redact import MASKED, dsn_secrets
from tests.cli.conftest import PG_DSN, Namespace, jitgrant
from tests.helpers import AccessRepo, git, grant

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PASSWORD = "Sh4rd-l0g-s3cret"  # in the DSN: the machine's server trusts, and ignores it


def parsed(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as one JSON object, each with the fields every event has."""
    lines = stderr.splitlines()
    assert lines, "no events"
    found = [json.loads(line) for line in lines]
    for event in found:
        assert TS.match(event["ts"]), event
        assert {"event", "run_id", "command"} <= set(event)
    assert len({e["run_id"] for e in found}) == 1
    return found


def with_password(dsn: str) -> str:
    return dsn.replace("root@", f"root:{PASSWORD}@", 1)


@pytest.fixture
def granted(pg_repo: AccessRepo) -> AccessRepo:
    pg_repo.write("grants/db1/alice.yaml",
                  grant(verifier=scram_sha256_verifier("alice-password")))
    pg_repo.commit("Merge pull request #3 from alice/grant")
    return pg_repo


def test_apply_logs_its_run_targets_and_actions_in_order(granted: AccessRepo,
                                                         namespace: Namespace) -> None:
    env = {namespace.dsn_env: with_password(PG_DSN)}
    result = jitgrant("apply", "--repo", str(granted.root), "--log-format", "json", env=env)
    assert result.exit_code == 0, result.stderr
    found = parsed(result.stderr)
    assert [e["event"] for e in found] == ["run_start", "target_start", "action",
                                           "target_end", "audit_record", "run_end"]
    start, target_start, action, target_end, audit_record, end = found
    assert start["command"] == "apply" and start["execute"] is True
    assert target_start["target"] == "db1" and target_start["engine"] == "postgres"
    assert {k: action[k] for k in ("target", "kind", "login", "cause", "status")} == {
        "target": "db1", "kind": "create", "login": namespace.login(), "cause": "granted",
        "status": "ok"}
    assert action["statements"] > 0 and action["error"] is None
    assert target_end["status"] == "ok" and target_end["actions"] == 1
    assert target_end["seconds"] >= target_end["execute_seconds"] >= 0
    assert target_start["ts"] <= target_end["ts"] <= end["ts"]
    assert (end["exit_code"], end["status"], end["targets"], end["failed_targets"],
            end["actions"]) == (0, "ok", 1, 0, 1)
    # The run id is the audit record's.
    record = json.loads((granted.root / audit_record["path"]).read_text())
    assert record["run_id"] == end["run_id"] and end["audit_record"] == audit_record["path"]
    # stdout is the text output, as without the option; no secret reaches the log.
    assert f"audit record: {audit_record['path']} (committed, not pushed: no --push)" \
        in result.stdout
    assert not any(line.startswith("{") for line in result.stdout.splitlines())
    assert PASSWORD not in result.stderr and "SCRAM-SHA-256$" not in result.stderr
    assert "verifier" not in result.stderr


def test_a_failing_target_is_logged_and_the_run_ends_failed(granted: AccessRepo) -> None:
    result = jitgrant("apply", "--repo", str(granted.root), "--log-format", "json", env={})
    assert result.exit_code == 1
    found = parsed(result.stderr)
    assert [e["event"] for e in found] == ["run_start", "target_start", "target_end",
                                           "run_end"]
    assert found[2]["status"] == "failed" and "is not set" in found[2]["error"]
    assert (found[-1]["status"], found[-1]["failed_targets"]) == ("failed", 1)


def test_an_error_that_stops_the_run_is_its_run_end(tmp_path: Path) -> None:
    """stderr holds JSON only: the one line of a user error becomes run_end's error."""
    (tmp_path / "not-a-repo").mkdir()
    result = jitgrant("apply", "--repo", str(tmp_path / "not-a-repo"), "--log-format", "json")
    assert result.exit_code == 1
    found = parsed(result.stderr)
    assert [e["event"] for e in found] == ["run_start", "run_end"]
    assert found[1]["status"] == "error" and "not a git repository" in found[1]["error"]


def test_plan_logs_planned_actions_and_problems_as_events(granted: AccessRepo,
                                                          namespace: Namespace) -> None:
    granted.write("grants/db1/broken.yaml", "grantee: [unclosed\n")
    granted.commit("a broken grant")
    text = jitgrant("plan", "--repo", str(granted.root), env=namespace.env)
    logged = jitgrant("plan", "--repo", str(granted.root), "--log-format", "json",
                      env=namespace.env)
    assert logged.exit_code == text.exit_code == 1
    assert logged.stdout == text.stdout  # stdout is the same with and without the option
    found = parsed(logged.stderr)
    kinds = [e["event"] for e in found]
    assert kinds[:4] == ["run_start", "target_start", "action", "target_end"]
    assert kinds[-1] == "run_end" and "problem" in kinds
    assert found[2]["status"] == "planned" and found[2]["statements"] > 0
    problem = next(e for e in found if e["event"] == "problem")
    assert problem["path"] == "grants/db1/broken.yaml" and problem["line"] >= 1
    assert "grants/db1/broken.yaml:" in text.stderr  # the text format: the problem's line


def test_text_is_the_default_and_changes_nothing(granted: AccessRepo,
                                                 namespace: Namespace) -> None:
    default = jitgrant("plan", "--repo", str(granted.root), env=namespace.env)
    text = jitgrant("plan", "--repo", str(granted.root), "--log-format", "text",
                    env=namespace.env)
    by_env = jitgrant("plan", "--repo", str(granted.root),
                      env={**namespace.env, "JITGRANT_LOG_FORMAT": "text"})
    assert default.exit_code == text.exit_code == by_env.exit_code == 2
    assert default.stdout == text.stdout == by_env.stdout
    assert default.stderr == text.stderr == by_env.stderr == ""


def test_the_environment_variable_chooses_json(granted: AccessRepo,
                                               namespace: Namespace) -> None:
    result = jitgrant("plan", "--repo", str(granted.root),
                      env={**namespace.env, "JITGRANT_LOG_FORMAT": "json"})
    assert result.exit_code == 2
    assert parsed(result.stderr)[-1]["status"] == "changes"


def test_every_string_of_an_event_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    dsn_secrets(f"postgresql://u:{PASSWORD}x@db.example/app")
    log = events.EventLog("apply", "abc123")
    log.emit("target_end", error=f"could not connect: password {PASSWORD}x refused",
             nested={"why": [f"{PASSWORD}x"]})
    line = json.loads(capsys.readouterr().err)
    assert line["error"] == f"could not connect: password {MASKED} refused"
    assert line["nested"] == {"why": [MASKED]}
    assert line["run_id"] == "abc123"


def test_a_record_no_push_took_is_an_event_of_its_own(granted: AccessRepo,
                                                       namespace: Namespace,
                                                       tmp_path: Path) -> None:
    """Every push refused (a pre-receive hook), the pending branch's too: the record, which
    the runner's checkout alone holds, is logged whole as one event; run_end has the error."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    git(granted.root, "push", "-q", str(origin), "main")
    hook = origin / "hooks/pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    ci = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", str(origin), str(ci)], check=True)
    result = jitgrant("apply", "--repo", str(ci), "--push", "--log-format", "json",
                      env=namespace.env)
    assert result.exit_code == 1
    found = parsed(result.stderr)
    assert [e["event"] for e in found][-2:] == ["audit_record_unpushed", "run_end"]
    kept, end = found[-2:]
    assert kept["record"]["run_id"] == end["run_id"]
    assert kept["record"] == json.loads((ci / kept["path"]).read_text())
    assert end["status"] == "error" and "main is protected" in end["error"]
