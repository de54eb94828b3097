"""schema/audit.schema.json describes exactly what `audit.record()` writes: every field of a
realistic run validates, and nothing else (a verifier, a typo'd key) would."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from reconciler import audit
from reconciler.apply import reconcile
from reconciler.load import SourceFile
from reconciler.model import Provenance
from reconciler.schemas import load_schema, validator
from reconciler.validate import Context, build_snapshot
from tests.audit_runs import Step, approved_grant, create, make_run, revoke, update
from tests.helpers import grant, policy, stamp

NOW = datetime(2026, 11, 17, 9, 30, tzinfo=timezone.utc)
VERIFIER = ("SCRAM-SHA-256$4096:c2FsdHNhbHQ=$" + "A" * 43 + "=:" + "B" * 43 + "=")


def problems(record: dict[str, Any]) -> list[str]:
    return [e.message for e in validator("audit").iter_errors(record)]


def realistic_record() -> dict[str, Any]:
    """Every kind of action and every null a record can hold."""
    alice = approved_grant("grants/orders-prod/alice.yaml", "alice", "orders-prod", "readonly",
                           NOW + timedelta(hours=8), "INC-1, \"stuck\"\norders", 4242,
                           NOW - timedelta(hours=1), ticket="INC-1")
    bob = approved_grant("grants/billing-mysql/bob.yaml", "bob", "billing-mysql", "readwrite",
                         NOW + timedelta(hours=2), "=cmd", None, NOW - timedelta(days=1))
    broken = approved_grant("grants/orders-prod/erin.yaml", "erin", "orders-prod", "readonly",
                            NOW, "x", None, NOW)  # invalid at the commit: no reason, no origin
    steps = [Step(create(alice)),
             Step(revoke("orders-prod", "jit_erin_readonly", "invalid", [broken])),
             Step(update([bob], cause="drift")),
             Step(revoke("orders-prod", "jit_carol_readonly", "expired", [alice]), sessions=2),
             Step(revoke("orders-prod", "jit_ghost_readonly", "removed")),
             Step(revoke("orders-prod", "jit_kim_readonly", "expired", hold="its objects in "
                         "database orders would go to the superuser postgres")),
             Step(revoke("billing-mysql", "jit_dave_readonly", "unknown"), error="lost")]
    run = make_run(NOW, steps, [alice, bob])
    run.targets[0].error = "connection lost"  # billing-mysql: a failed target
    return audit.record(run, "Test Committer <ci@example.com>")


def test_a_realistic_record_validates() -> None:
    record = realistic_record()
    assert problems(record) == []
    kinds = {(a["action"], a["status"]) for a in record["actions"]}
    assert {("create", "ok"), ("update", "ok"), ("revoke", "failed")} <= kinds
    by_login = {a["login"]: a for a in record["actions"]}
    [with_pr] = by_login["jit_alice_readonly"]["grants"]
    assert with_pr["pull_request"] == 4242 and with_pr["merge_commit"]
    assert by_login["jit_kim_readonly"]["held"].startswith("its objects")
    assert by_login["jit_ghost_readonly"]["held"] is None
    assert by_login["jit_erin_readonly"]["grants"] == [
        {"file": "grants/orders-prod/erin.yaml", "reason": None, "ticket": None}]


def test_an_offline_plan_of_real_grant_files_validates() -> None:
    """Statements as the engine renders them, provenance as the snapshot carries it."""
    files = [SourceFile("policies/main.yaml", json.dumps(policy()).encode(), "p1"),
             SourceFile("grants/db1/alice.yaml", json.dumps(
                 grant(expires=NOW + timedelta(hours=2), verifier=VERIFIER)).encode(), "a1"),
             SourceFile("grants/db1/bob.yaml", b"grantee: bob\ntarget: db1\naccess: nope\n"
                        b"expires: " + stamp(NOW).encode() + b"\n", "b1")]
    prov = {"grants/db1/alice.yaml": Provenance("a" * 40, "Alice", "alice@example.com", NOW,
                                                NOW, "b" * 40, 7)}
    snapshot = build_snapshot(files[:1], files[1:], Context(NOW, prov), commit="c" * 40)
    assert [r.path for r in snapshot.invalid_grants] == ["grants/db1/bob.yaml"]
    run = reconcile(snapshot, NOW, offline=True)
    record = audit.record(run, "unknown")
    assert problems(record) == []
    assert record["actions"][0]["sql"] and VERIFIER not in json.dumps(record)


@pytest.mark.parametrize("change", [
    lambda r: r["actions"][0].update(password_verifier="SCRAM-SHA-256$..."),
    lambda r: r.update(extra=1),
    lambda r: r["actions"][0].update(action="grant"),
    lambda r: r["actions"][0].update(expires="2026-11-17 09:30"),
    lambda r: r["actions"][0]["grants"][0].pop("merge_commit"),
    lambda r: r["targets"][0].pop("error"),
    lambda r: r.update(schema_version=2),
], ids=["verifier", "extra-key", "bad-kind", "bad-time", "half-provenance", "missing", "version"])
def test_anything_else_does_not_validate(change: Any) -> None:
    record = copy.deepcopy(realistic_record())
    # First an action whose grant has its full provenance.
    record["actions"].sort(key=lambda a: not (a["grants"] and "commit" in a["grants"][0]))
    change(record)
    assert problems(record)


def test_the_schema_names_every_field_it_requires() -> None:
    schema = load_schema("audit")
    for part in [schema, *schema["$defs"].values()]:
        if "required" in part:
            assert set(part["required"]) <= set(part["properties"])


def test_owned_objects_list_what_moved_and_records_from_before_the_list_still_load() -> None:
    record = realistic_record()
    [ghost] = [a for a in record["actions"] if a["login"] == "jit_ghost_readonly"]
    assert ghost["owned_objects"] == [{"database": "orders", "reassigned_to": "orders_owner",
                                       "objects": ['view app."le""ak" (granted to PUBLIC, '
                                                   'revoked)']}]
    for action in record["actions"]:
        for owned in action["owned_objects"]:
            del owned["objects"]
    assert problems(record) == []
