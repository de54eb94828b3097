"""Issue 12, finding 10, without a server: what each action says after a lost connection
(engines.base.Progress), how the next run compares a cut action with the server
(aftercut.compare), and which record it follows up, once (aftercut.reader). The real cuts
are in tests/faults/test_after_cut.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from reconciler import aftercut, audit
from reconciler.aftercut import CutAction, FollowUp, compare, reader
from reconciler.engines.base import Progress, Statement
from reconciler.model import ActualRole, ActualState, Target
from reconciler.plan import Action, TargetPlan
from reconciler.render import plan_data, plan_text
from reconciler.schemas import validator
from tests.audit_runs import Step, make_run, revoke, write_record

TARGET = Target("db1", "postgres", "JG_DSN")
LOST = "connection lost: server closed the connection unexpectedly"


def _plan(*kinds: str) -> TargetPlan:
    return TargetPlan(TARGET, tuple(Action("db1", kind, f"jit_{n}", "granted")
                                    for n, kind in enumerate(kinds)))


def _stmts(*phases_per_action: tuple[str, ...]) -> list[Statement]:
    return [Statement(index, phase, f"-- {index} {phase}", f"-- {index} {phase}")
            for index, phases in enumerate(phases_per_action) for phase in phases]


def _of(stmts: list[Statement], phase: str, action: int | None = None) -> list[Statement]:
    return [s for s in stmts if s.phase == phase and action in (None, s.action)]


def test_a_cut_says_for_each_action_what_became_of_it() -> None:
    """Two revokes: lock-out committed for both, then the strip of both in one transaction
    lost before its COMMIT; a creation that never ran."""
    stmts = _stmts(("lockout", "strip", "main"), ("lockout", "strip", "main"), ("main",))
    progress = Progress(_plan("revoke", "revoke", "create"), stmts)
    progress.begin(_of(stmts, "lockout"))
    progress.committed()
    progress.begin(_of(stmts, "strip"))
    first, second, third = progress.at_cut(LOST)
    for result in (first, second):
        assert (result.status, result.cut, result.statements) == ("failed", "rolled_back", 1)
        assert result.error == (f"not done: 1 of its 3 statements had committed; the "
                                f"connection was lost ({LOST}) before the COMMIT of 1 of its "
                                "statements, which the server rolled back; the other 1 never "
                                "ran")
    assert (third.status, third.cut, third.statements) == ("failed", "not_run", 0)
    assert third.error == (f"not done: the connection was lost ({LOST}) before any of its "
                           "statements ran")


def test_a_commit_lost_is_in_doubt_and_unknown_only_when_nothing_else_was_left() -> None:
    stmts = _stmts(("lockout", "main"), ("lockout",), ("main",))
    progress = Progress(_plan("revoke", "update", "create"), stmts)
    progress.begin(_of(stmts, "lockout"))
    progress.committing = True  # the statements ran; the COMMIT's answer never came
    revoked, updated, created = progress.at_cut(LOST)
    assert (revoked.status, revoked.cut, revoked.statements) == ("failed", "in_doubt", 0)
    assert revoked.error == (f"not done: the connection was lost ({LOST}) during the COMMIT "
                             "of 1 of its statements, whether they took effect is not known; "
                             "the other 1 never ran")
    assert (updated.status, updated.cut, updated.unknown) == ("unknown", "in_doubt", True)
    assert str(updated.error).startswith(f"unknown: the connection was lost ({LOST}) during "
                                         "the COMMIT of its 1 statement(s)")
    assert created.cut == "not_run"


def test_actions_done_or_failed_before_the_cut_keep_their_outcome() -> None:
    stmts = _stmts(("main",), ("main",), ("main",))
    progress = Progress(_plan("create", "create", "create"), stmts)
    progress.begin(_of(stmts, "main", 0))
    progress.results[0].statements = 1
    progress.committed()
    progress.begin(_of(stmts, "main", 1))
    progress.results[1].error = "role exists"  # refused by the server, in a savepoint
    progress.committed()
    progress.begin(_of(stmts, "main", 2), committing=True)
    done, refused, doubt = progress.at_cut(LOST)
    assert (done.status, done.error, done.cut) == ("ok", None, None)
    assert (refused.status, refused.error, refused.cut) == ("failed", "role exists", None)
    assert doubt.status == "unknown"


def test_autocommit_says_while_running() -> None:
    stmts = _stmts(("lockout", "main"))
    progress = Progress(_plan("revoke"), stmts, autocommit=True)
    progress.begin(_of(stmts, "lockout"))
    progress.committed()
    progress.begin(_of(stmts, "main"), committing=True)
    [result] = progress.at_cut(LOST)
    assert result.status == "unknown" and result.statements == 1
    assert f"({LOST}) while running its last 1 statement(s)" in str(result.error)


def _state(*logins: str) -> ActualState:
    return ActualState(roles=MappingProxyType({n: ActualRole(n) for n in logins}),
                       existing_groups=frozenset(), admin="jitgrant", admin_is_superuser=True,
                       database="postgres")


def _cut(kind: str, login: str = "jit_a") -> CutAction:
    return CutAction("audit/2026/12/05/x.json", "r1", "db1", login, kind, "in_doubt",
                     "unknown")


@pytest.mark.parametrize(("kind", "there", "now", "found", "then"), [
    ("revoke", False, None, "had taken effect", "nothing more to do"),
    ("revoke", True, "revoke", "had not taken effect", "revoking now"),
    ("revoke", True, None, "had not taken effect", "no longer planned"),
    ("create", True, None, "had taken effect", "nothing more to do"),
    ("create", True, "update", "had partly taken effect", "updating now"),
    ("create", False, "create", "had not taken effect", "creating now"),
    ("update", True, None, "had taken effect", "nothing more to do"),
    ("update", True, "update", "had not taken effect", "updating now"),
])
def test_a_cut_action_against_the_server(kind: str, there: bool, now: str | None,
                                         found: str, then: str) -> None:
    plan = TargetPlan(TARGET, (Action("db1", now, "jit_a", "granted"),) if now else ())
    [follow] = compare([_cut(kind)], _state(*(["jit_a"] if there else [])), plan)
    assert (follow.found, follow.now) == (found, now)
    assert follow.line() == f"after the cut of run r1 (audit/2026/12/05/x.json): {kind} of " \
        f"jit_a {found}: {then}"


def _record(root: Path, stamp: str, run_id: str, targets: dict[str, int],
            actions: Sequence[dict[str, Any]] = (), follow_ups: Sequence[dict[str, Any]] = ()
            ) -> str:
    rel = f"audit/2026/12/05/{stamp}-{run_id}.json"
    data: dict[str, Any] = {"run_id": run_id, "targets": [{"target": t, "actions": n}
                                                          for t, n in targets.items()],
                            "actions": list(actions)}
    if follow_ups:
        data["follow_ups"] = list(follow_ups)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(json.dumps(data))
    return rel


def _action(login: str, status: str, cut: str | None = None, target: str = "db1"
            ) -> dict[str, Any]:
    return {"target": target, "login": login, "action": "revoke", "status": status,
            **({"cut": cut} if cut else {})}


def test_the_newest_record_of_a_target_is_followed_up_once(tmp_path: Path) -> None:
    cut = _record(tmp_path, "20261205T100000Z", "c1", {"db1": 2, "db2": 1},
                  [_action("jit_a", "failed", "rolled_back"), _action("jit_b", "ok"),
                   _action("jit_c", "failed", "in_doubt", target="db2")])
    # db2 unreachable later: its record names db2 with no actions, so it is looked past
    _record(tmp_path, "20261205T100500Z", "u1", {"db1": 0, "db2": 0})
    earlier = reader(tmp_path, ["db1", "db2", "db3"])
    assert [(c.login, c.cut, c.record) for c in earlier("db1")] == [
        ("jit_a", "rolled_back", cut)]
    assert [c.login for c in earlier("db2")] == ["jit_c"] and earlier("db3") == []
    follow = FollowUp(earlier("db1")[0], False, "revoke").as_dict()
    _record(tmp_path, "20261205T101000Z", "f1", {"db1": 1}, [_action("jit_a", "ok")], [follow])
    assert reader(tmp_path, ["db1"])("db1") == []


def test_within_one_second_a_record_named_by_a_follow_up_is_done(tmp_path: Path) -> None:
    """Names sort by run id within a second: the follow-up may sort before the record it
    follows up."""
    cut = _record(tmp_path, "20261205T100000Z", "zz", {"db1": 1},
                  [_action("jit_a", "unknown", "in_doubt")])
    [found] = reader(tmp_path, ["db1"])("db1")
    _record(tmp_path, "20261205T100000Z", "aa", {"db1": 0},
            follow_ups=[FollowUp(found, True, None).as_dict()])
    assert reader(tmp_path, ["db1"])("db1") == []
    assert found.record == cut


def test_records_from_before_cut_existed_say_unknown(tmp_path: Path) -> None:
    _record(tmp_path, "20261205T100000Z", "old", {"db1": 1}, [_action("jit_a", "unknown")])
    [found] = reader(tmp_path, ["db1"])("db1")
    assert (found.cut, found.status) == ("in_doubt", "unknown")


def test_a_clean_run_after_a_cut_ends_the_search_and_the_look_back_is_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(tmp_path, "20261205T090000Z", "c1", {"db1": 1},
            [_action("jit_a", "failed", "rolled_back")])
    _record(tmp_path, "20261205T091000Z", "ok", {"db1": 1}, [_action("jit_a", "ok")])
    assert reader(tmp_path, ["db1"])("db1") == []
    _record(tmp_path, "20261205T092000Z", "c2", {"db1": 1},
            [_action("jit_b", "failed", "not_run")])
    for n in range(3):
        _record(tmp_path, f"20261205T10000{n}Z", f"x{n}", {"db2": 1})
    monkeypatch.setattr(aftercut, "LOOK_BACK", 3)
    assert reader(tmp_path, ["db1"])("db1") == []
    monkeypatch.setattr(aftercut, "LOOK_BACK", 4)
    assert [c.login for c in reader(tmp_path, ["db1"])("db1")] == ["jit_b"]


def test_a_record_with_a_cut_action_and_follow_ups_validates() -> None:
    run = make_run(datetime(2026, 12, 5, 10, tzinfo=timezone.utc),
                   [Step(revoke("orders-prod", "jit_a", "removed"), error="lost")], [])
    target = run.targets[0]
    target.results[0].cut = "rolled_back"
    target.follow_ups = [FollowUp(_cut("revoke", "jit_b"), True, None)]
    record = audit.record(run, "Test <t@example.com>")
    assert record["actions"][0]["cut"] == "rolled_back"
    assert record["follow_ups"][0]["found"] == "had taken effect"
    assert [e.message for e in validator("audit").iter_errors(record)] == []


def test_records_as_apply_writes_them_are_read_up_to_their_actions_unless_cut(
        tmp_path: Path) -> None:
    started = datetime(2026, 12, 5, 10, tzinfo=timezone.utc)
    cut = make_run(started, [Step(revoke("orders-prod", "jit_a", "removed"), error="lost")], [])
    cut.targets[0].results[0].cut = "rolled_back"
    rel = write_record(tmp_path, cut)
    assert json.loads((tmp_path / rel).read_text())["targets"][0]["cut"] == 1
    [found] = reader(tmp_path, ["orders-prod"])("orders-prod")
    assert (found.login, found.cut, found.record) == ("jit_a", "rolled_back", rel)
    clean = make_run(started + timedelta(minutes=5),
                     [Step(revoke("orders-prod", "jit_b", "removed"))], [])
    path = tmp_path / write_record(tmp_path, clean)
    text = path.read_text()
    at = text.index('\n  "actions": [')
    path.write_text(text[:at + 20] + "not JSON: never read")  # a clean record's actions
    assert reader(tmp_path, ["orders-prod"])("orders-prod") == []


def test_apply_says_what_it_found_in_text_and_json() -> None:
    run = make_run(datetime(2026, 12, 5, 10, tzinfo=timezone.utc),
                   [Step(revoke("orders-prod", "jit_b", "removed"))], [])
    follow = FollowUp(_cut("revoke", "jit_b"), False, "revoke")
    run.targets[0].follow_ups = [follow]
    said = ("after the cut of run r1 (audit/2026/12/05/x.json): revoke of jit_b had not "
            "taken effect: revoking now")
    lines = plan_text(run).splitlines()
    assert lines[0].startswith("target orders-prod (postgres): 1 change")
    assert lines[1] == f"  {said}"
    [data] = plan_data(run)["targets"]
    assert data["follow_ups"] == [{**follow.as_dict(), "said": said}]
