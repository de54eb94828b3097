"""Audit records for the auditor's views (`audit --grant`, `audit --format html`): written by the
real `audit.record()` (tests/audit_runs.py), then given by hand the fields of the #15 contract
(/work/brief/audit-contract.md: a grant's `approval`, a revoke's `ended_sessions`, a record's
`sessions` and `usage`), as the apply of a later jitgrant writes them.

The story told (times UTC; 2026-11-16 is a Monday):
- alice, readonly on orders-prod, grants/orders-prod/alice.yaml: pull request #12 by alice-gh,
  approved by dave-gh (a code owner), merged by carol-gh; created 09:05; a session sampled by a
  usage-only run at 09:30 and again at 10:00 (where the run also repaired drift); the grant
  expires and the revoke at 12:05 ends that session. The same file, rewritten in #20, grants
  her again on 2026-11-18 (a second access period, its own session).
- bob, readwrite on orders-prod, a record from before the contract (no approval, no sessions):
  created, then his file removed in #14 (ended_by).
- erin, readonly on billing-mysql: approved, sampled, never used.
- mallory, readonly on analytics-staging, hostile: her reason closes the script element, her
  session's application and client are markup, her pull request's URL is javascript:.
- frank: a create that failed, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.model import Grant
from tests.audit_runs import (Step, approved_grant, create, login_of, make_run, revoke, update,
                              write_record)

Data = dict[str, Any]
ALICE_FILE = "grants/orders-prod/alice.yaml"
BOB_FILE = "grants/orders-prod/bob.yaml"
ERIN_FILE = "grants/billing-mysql/erin.yaml"
MALLORY_FILE = "grants/analytics-staging/mallory.yaml"
FRANK_FILE = "grants/orders-prod/frank.yaml"
HOSTILE_REASON = "</script><script>document.title='pwned'</script>"
HOSTILE_APP = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
HOSTILE_CLIENT = "<svg onload=\"document.title='pwned'\">\u2028"
ALICE = login_of("orders-prod", "alice", "readonly")
BOB = login_of("orders-prod", "bob", "readwrite")
ERIN = login_of("billing-mysql", "erin", "readonly")
MALLORY = login_of("analytics-staging", "mallory", "readonly")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def approval(pr: int, author: str, *approvers: str, lookup: str = "ok",
             url: str | None = None, merged: str = "2026-11-16T09:00:00Z") -> Data:
    reviewed = (t(merged) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"provider": "github", "url": url or f"https://github.com/acme/access/pull/{pr}",
            "author": author, "merged_by": "carol-gh", "merged_at": merged,
            "reviews": [{"login": a, "state": "APPROVED", "submitted_at": reviewed,
                         "code_owner": a == "dave-gh"} for a in approvers]
            + [{"login": "zed-gh", "state": "CHANGES_REQUESTED", "submitted_at": None,
                "code_owner": None}],
            "approvals": len(approvers), "lookup": lookup,
            "note": None if lookup == "ok" else "no token"}


def session(target: str, login: str, sid: str, started: str, last: str | None = None,
            client: str | None = "10.0.0.5", application: str | None = "psql") -> Data:
    return {"target": target, "login": login, "grantee": None, "access": None, "id": sid,
            "started": started, "last_active": last, "client": client,
            "application": application, "database": "orders"}


def ended(s: Data) -> Data:
    return {k: s[k] for k in ("id", "started", "client", "application", "database")}


def record(root: Path, when: str, steps: list[Step], grants: list[Grant], run_id: str,
           patch: Callable[[Data], None] | None = None) -> str:
    """A record; `patch` adds the contract's fields. A record given `sessions` (or `usage`)
    says it sampled the targets they name, as the sessions branch writes it (`sampled`)."""
    rel = write_record(root, make_run(t(when), steps, grants, run_id=run_id))
    if patch is not None:
        path = root / rel
        data = json.loads(path.read_text())
        patch(data)
        sampled = {s["target"] for s in data.get("sessions", []) + data.get("usage", [])}
        sampled |= set(data.pop("sampled", ()))
        for entry in data["targets"]:
            if entry["target"] in sampled:
                entry["sampled"] = True
                sampled.discard(entry["target"])
        data["targets"] += [{"target": name, "engine": "postgres", "status": "ok",
                             "error": None, "actions": 0, "sampled": True}
                            for name in sorted(sampled)]
        path.write_text(json.dumps(data, indent=1))
    return rel


def grant_approval(data: Data, index: int, value: Data) -> None:
    for g in data["actions"][index]["grants"]:
        g["approval"] = value


def write_trail(root: Path) -> None:
    alice = approved_grant(ALICE_FILE, "alice", "orders-prod", "readonly",
                           t("2026-11-16T12:00:00Z"), "INC-12 stuck orders", 12,
                           t("2026-11-16T09:00:00Z"), ticket="INC-12")
    s1 = session("orders-prod", ALICE, "4242", "2026-11-16T09:20:00Z", "2026-11-16T09:29:00Z")
    s1_later = {**s1, "last_active": "2026-11-16T09:58:00Z"}

    def first(d: Data) -> None:
        grant_approval(d, 0, approval(12, "alice-gh", "dave-gh"))
        d.update(sessions=[], sampled=["orders-prod"])

    record(root, "2026-11-16T09:05:00Z", [Step(create(alice))], [alice], "a1", first)
    record(root, "2026-11-16T09:30:00Z", [], [alice], "a2",
           lambda d: d.update(sessions=[s1], usage=[
               {"target": "orders-prod", "login": ALICE, "calls": 5, "connections_total": 1}]))
    record(root, "2026-11-16T10:00:00Z", [Step(update([alice], cause="drift"))], [alice], "a3",
           lambda d: d.update(sessions=[s1_later], usage=[
               {"target": "orders-prod", "login": ALICE, "calls": 17,
                "connections_total": 1}]))

    def expired(d: Data) -> None:
        d["actions"][0]["ended_sessions"] = [ended(s1)]
        d["sessions"] = [s1_later]

    record(root, "2026-11-16T12:05:00Z",
           [Step(revoke("orders-prod", ALICE, "expired", [alice]), sessions=1)], [alice], "a4",
           expired)

    again = approved_grant(ALICE_FILE, "alice", "orders-prod", "readonly",
                           t("2026-11-18T16:00:00Z"), "INC-20 refunds", 20,
                           t("2026-11-18T13:00:00Z"))
    s2 = session("orders-prod", ALICE, "5151", "2026-11-18T13:10:00Z", "2026-11-18T13:15:00Z",
                 client="10.0.0.9")
    record(root, "2026-11-18T13:05:00Z", [Step(create(again))], [again], "a5",
           lambda d: grant_approval(d, 0, approval(20, "alice-gh", "dave-gh", "erin-gh",
                                                    merged="2026-11-18T13:00:00Z")))
    record(root, "2026-11-18T13:20:00Z", [], [again], "a6", lambda d: d.update(sessions=[s2]))
    record(root, "2026-11-18T16:05:00Z",
           [Step(revoke("orders-prod", ALICE, "expired", [again]))], [again], "a7")

    bob = approved_grant(BOB_FILE, "bob", "orders-prod", "readwrite", t("2026-11-20T18:00:00Z"),
                         "INC-14 migration", None, t("2026-11-16T21:00:00Z"))
    record(root, "2026-11-16T21:05:00Z", [Step(create(bob))], [bob], "b1")

    def removed(d: Data) -> None:
        d["actions"][0].pop("ended_sessions", None)  # a record from before the contract
        d["actions"][0].update(grantee="bob", access="readwrite", ended_by={
            "file": BOB_FILE, "commit": "e" * 40, "author": "Carol",
            "author_email": "carol@example.com", "authored": "2026-11-17T08:00:00Z",
            "merge_commit": "f" * 40, "pull_request": 14})

    record(root, "2026-11-17T08:10:00Z", [Step(revoke("orders-prod", BOB, "removed"))], [],
           "b2", removed)

    erin = approved_grant(ERIN_FILE, "erin", "billing-mysql", "readonly",
                          t("2026-11-17T17:00:00Z"), "quarterly close", 16,
                          t("2026-11-17T09:00:00Z"))
    record(root, "2026-11-17T09:05:00Z", [Step(create(erin))], [erin], "e1",
           lambda d: (grant_approval(d, 0, approval(16, "erin-gh", "dave-gh")),
                      d.update(sessions=[], sampled=["billing-mysql"])))
    record(root, "2026-11-17T17:05:00Z",
           [Step(revoke("billing-mysql", ERIN, "expired", [erin]))], [erin], "e2",
           lambda d: d.update(sessions=[], sampled=["billing-mysql"]))

    mallory = approved_grant(MALLORY_FILE, "mallory", "analytics-staging", "readonly",
                             t("2026-11-19T23:00:00Z"), HOSTILE_REASON, 66,
                             t("2026-11-19T20:00:00Z"), ticket=HOSTILE_APP)
    sm = session("analytics-staging", MALLORY, "1", "2026-11-19T20:06:00Z",
                 client=HOSTILE_CLIENT, application=HOSTILE_APP)
    record(root, "2026-11-19T20:05:00Z", [Step(create(mallory))], [mallory], "m1",
           lambda d: grant_approval(d, 0, approval(66, HOSTILE_APP, "dave-gh",
                                                    url="javascript:document.title='pwned'")))
    record(root, "2026-11-19T20:10:00Z", [], [mallory], "m2", lambda d: d.update(sessions=[sm]))

    frank = approved_grant(FRANK_FILE, "frank", "orders-prod", "readonly",
                           t("2026-11-20T12:00:00Z"), "look", 30, t("2026-11-20T09:00:00Z"))
    record(root, "2026-11-20T09:05:00Z",
           [Step(create(frank), error="permission denied to create role")], [frank], "f1")
