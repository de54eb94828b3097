"""Apply runs built in memory, to write the audit records jitgrant would write for them through
the real `audit.record()`: the same grants, actions and results, without a database."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from reconciler import audit
from reconciler.apply import Run, TargetRun
from reconciler.engines import ActionResult
from reconciler.model import Grant, Policy, Provenance, Target, login_name
from reconciler.plan import Action, Changes, TargetPlan
from reconciler.validate import Snapshot

TARGETS = {
    "orders-prod": Target("orders-prod", "postgres", "ORDERS_PROD_DSN", "production"),
    "billing-mysql": Target("billing-mysql", "mysql", "BILLING_DSN", "production"),
    "analytics-staging": Target("analytics-staging", "postgres", "ANALYTICS_DSN", "staging"),
}
POLICY = Policy(MappingProxyType(TARGETS), MappingProxyType({}), MappingProxyType({}))


def sha(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def approved_grant(path: str, grantee: str, target: str, access: str, expires: datetime,
                   reason: str, pr: int | None, merged: datetime,
                   ticket: str | None = None) -> Grant:
    """A grant file as merged in pull request `pr` (a direct commit when None)."""
    commit = sha(path, pr, merged)
    prov = Provenance(commit=commit, author=grantee.title(), author_email=f"{grantee}@example.com",
                      authored=merged - timedelta(minutes=20), committed=merged,
                      merge_commit=sha("merge", commit) if pr else commit, pull_request=pr)
    return Grant(path=path, grantee=grantee, target=target, access=access, expires=expires,
                 reason=reason, ticket=ticket, provenance=prov)


def login_of(target: str, grantee: str, access: str) -> str:
    t = TARGETS[target]
    return login_name(t.role_prefix, grantee, access, t.engine)


def create(grant: Grant) -> Action:
    return Action(target=grant.target, kind="create", login=login_of(grant.target, grant.grantee,
                  grant.access), cause="granted", grantee=grant.grantee, access=grant.access,
                  expires=grant.expires, grant_files=(grant.path,))


def update(grants: Sequence[Grant], cause: str = "granted") -> Action:
    latest = max(grants, key=lambda g: g.expires)
    return Action(target=latest.target, kind="update", cause=cause,
                  login=login_of(latest.target, latest.grantee, latest.access),
                  grantee=latest.grantee, access=latest.access, expires=latest.expires,
                  grant_files=tuple(sorted(g.path for g in grants)),
                  changes=Changes(valid_until=True, comment=cause == "granted",
                                  password=cause == "drift"))


def revoke(target: str, login: str, cause: str, grants: Sequence[Grant] = (),
           hold: str | None = None) -> Action:
    """A revoke as plan.py makes it: a removed file leaves no grantee behind; `hold`: locked
    out and stripped but kept."""
    if not grants:
        return Action(target=target, kind="revoke", login=login, cause=cause, hold=hold)
    return Action(target=target, kind="revoke", login=login, cause=cause,
                  grantee=grants[0].grantee, access=grants[0].access,
                  expires=max(g.expires for g in grants),
                  grant_files=tuple(sorted(g.path for g in grants)), hold=hold)


@dataclass
class Step:
    action: Action
    error: str | None = None  # the action failed
    sessions: int = 0


def make_run(started: datetime, steps: Sequence[Step], grants: Sequence[Grant],
             commit: str | None = None, run_id: str | None = None) -> Run:
    """An executed run: one TargetRun per target the steps touch, in policy order."""
    snapshot = Snapshot(policy=POLICY, grants=list(grants), problems=[],
                        commit=commit or sha("head", started))
    targets = []
    for name, target in sorted(TARGETS.items()):
        mine = [s for s in steps if s.action.target == name]
        if not mine:
            continue
        results = [_result(s) for s in mine]
        targets.append(TargetRun(target, plan=TargetPlan(target, tuple(s.action for s in mine)),
                                 results=results, executed=True))
    run = Run(snapshot, started, targets, run_id=run_id or secrets.token_hex(6))
    run.finished = started + timedelta(seconds=2)
    return run


def _result(step: Step) -> ActionResult:
    dropped = step.action.kind == "revoke" and not step.action.hold
    owned = {"orders": "orders_owner"} if dropped else {}
    planted = {"orders": ['view app."le""ak" (granted to PUBLIC, revoked)']} if dropped else {}
    return ActionResult(statements=0 if step.error else 3, sessions_ended=step.sessions,
                        owned_objects=owned if not step.error else {},
                        planted=planted if not step.error else {}, error=step.error)


def write_record(root: Path, run: Run, actor: str = "reconcile-bot") -> str:
    """Write the run's record where `jitgrant apply` would; return its path."""
    return audit.write(root, run, audit.to_json(audit.record(run, actor)))
