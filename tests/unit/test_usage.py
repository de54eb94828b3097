"""The query side of session use (reconciler/usage.py) on records written by hand at chosen
times: after-hours judged by session starts where known, by grant times otherwise; counters
that grow make a period used; records older than sampling leave `used` null."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.auditlog import Query, load, query_rows
from reconciler.sessions import newest_seen

LOGIN = "jit_alice_readonly"


def action(kind: str, ended: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {
        "target": "db1", "login": LOGIN, "grantee": "alice", "access": "readonly",
        "action": kind, "cause": "granted" if kind == "create" else "expired", "changes": [],
        "expires": "2026-11-20T00:00:00Z", "grant_files": ["grants/db1/a.yaml"], "grants": [],
        "statements": 1, "sql": [], "sessions_ended": len(ended or []), "owned_objects": [],
        "held": None, "status": "ok", "error": None}
    if kind == "revoke":
        a["ended_sessions"] = ended or []
    return a


def write(root: Path, at: str, actions: list[dict[str, Any]], sessions: list[Any] | None = None,
          usage: list[Any] | None = None, sampled: bool = True) -> None:
    stamp = at.replace("-", "").replace(":", "")
    run = f"r{len(list(root.rglob('*.json')))}"
    data: dict[str, Any] = {
        "schema_version": 1, "run_id": run, "started": at, "finished": at,
        "jitgrant_version": "0", "commit": None, "actor": "ci",
        "targets": [{"target": "db1", "engine": "postgres", "status": "ok", "error": None,
                     "actions": len(actions), **({"sampled": True} if sampled else {})}]}
    if sampled:
        data["sessions"] = sessions or []
        data["usage"] = usage or []
    data["actions"] = actions
    folder = root / "audit" / at[:4] / at[5:7] / at[8:10]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stamp}-{run}.json").write_text(json.dumps(data))


def seen(started: str | None, sid: str = "7") -> dict[str, Any]:
    return {"target": "db1", "login": LOGIN, "grantee": "alice", "access": "readonly",
            "id": sid, "started": started, "last_active": None, "client": "10.0.0.5",
            "application": "psql", "database": "orders"}


def rows(root: Path, **query: Any) -> list[dict[str, Any]]:
    log = load(root)
    assert not log.skipped, log.skipped
    unused = query.pop("unused", False)
    return query_rows(log, Query(**query), "access", unused)


def test_after_hours_by_session_start_not_grant_time(tmp_path: Path) -> None:
    # Granted Wednesday 10:00 (working hours), used from 23:00 that night.
    write(tmp_path, "2026-11-18T10:00:00Z", [action("create")])
    write(tmp_path, "2026-11-18T23:05:00Z", [], [seen("2026-11-18T23:00:00Z")])
    write(tmp_path, "2026-11-19T10:00:00Z", [action("revoke")])
    [row] = rows(tmp_path, after_hours=True)
    assert row["judged_by"] == "sessions" and row["first_used"] == "2026-11-18T23:00:00Z"
    assert row["last_seen"] == "2026-11-18T23:05:00Z" and row["used"] is True


def test_granted_after_hours_but_used_in_working_hours_is_not_after_hours(tmp_path: Path) -> None:
    write(tmp_path, "2026-11-18T22:00:00Z", [action("create")])
    write(tmp_path, "2026-11-19T09:05:00Z", [], [seen("2026-11-19T09:00:00Z")])
    write(tmp_path, "2026-11-19T10:00:00Z", [action("revoke")])
    assert rows(tmp_path, after_hours=True) == []
    [row] = rows(tmp_path)
    assert row["judged_by"] == "sessions"


def test_unused_and_never_sampled_periods_are_judged_by_grant(tmp_path: Path) -> None:
    write(tmp_path, "2026-11-18T22:00:00Z", [action("create")])
    write(tmp_path, "2026-11-19T06:00:00Z", [action("revoke")])
    [row] = rows(tmp_path, after_hours=True)
    assert row["judged_by"] == "grant" and row["used"] is False
    assert [r["login"] for r in rows(tmp_path, unused=True)] == [LOGIN]


def test_records_older_than_sampling_leave_used_unknown(tmp_path: Path) -> None:
    write(tmp_path, "2026-11-18T10:00:00Z", [action("create")], sampled=False)
    old = action("revoke")
    del old["ended_sessions"]
    write(tmp_path, "2026-11-18T12:00:00Z", [old], sampled=False)
    [row] = rows(tmp_path)
    assert row["used"] is None and row["first_used"] is None
    assert rows(tmp_path, unused=True) == []


def test_a_counter_that_grows_is_use_without_a_session(tmp_path: Path) -> None:
    base = {"target": "db1", "login": LOGIN, "calls": None, "sessions_open": 0}
    write(tmp_path, "2026-11-18T10:00:00Z", [action("create")],
          usage=[{**base, "connections_total": 4}])  # from an earlier login of the same name
    write(tmp_path, "2026-11-18T10:05:00Z", [], usage=[{**base, "connections_total": 4}])
    write(tmp_path, "2026-11-18T12:00:00Z", [action("revoke")],
          usage=[{**base, "connections_total": 4}])
    assert rows(tmp_path)[0]["used"] is False  # the count was there before the grant
    write(tmp_path, "2026-11-18T10:10:00Z", [], usage=[{**base, "connections_total": 5}])
    [row] = rows(tmp_path)
    assert row["used"] is True and row["sessions_seen"] == 0 and row["first_used"] is None


def test_the_revocation_ended_sessions_count_as_seen(tmp_path: Path) -> None:
    write(tmp_path, "2026-11-18T10:00:00Z", [action("create")])
    ended = {"id": "9", "started": "2026-11-18T11:58:00Z", "client": None,
             "application": None, "database": "orders"}
    write(tmp_path, "2026-11-18T12:00:00Z", [action("revoke", [ended])])
    [row] = rows(tmp_path)
    assert row["used"] is True and row["first_used"] == "2026-11-18T11:58:00Z"
    assert row["last_seen"] == "2026-11-18T12:00:00Z" and row["sessions_ended"] == 1


def test_the_newest_records_of_a_second_are_all_compared(tmp_path: Path) -> None:
    """Records of one second sort by run id: the write rule compares with each of them."""
    write(tmp_path, "2026-11-18T10:00:00Z", [], [seen(None, "1")])
    write(tmp_path, "2026-11-18T10:00:00Z", [], [seen(None, "2")])
    write(tmp_path, "2026-11-18T09:00:00Z", [], [seen(None, "3")])
    found = newest_seen(tmp_path, {"db1"})
    assert sorted(sid for keys, _ in found["db1"] for _, sid, _ in keys) == ["1", "2"]
