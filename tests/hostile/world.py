"""A server as the engines would report it, built in memory around a snapshot, with everything a
plan must never touch: roles outside the namespace, superusers, never_touch, the admin role, a
login of another target; plus drifted and unknown logins inside the namespace, so that every kind
of statement gets rendered. Then: plan, render for each engine, and check every statement."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType

from reconciler.apply import group_roles
from reconciler.engines import ENGINES
from reconciler.engines.mysql import EVENT_PREFIX, account_key
from reconciler.errors import Problem
from reconciler.model import ActualRole, ActualState, Target
from reconciler.plan import TargetPlan, desired_state, diff, marker_comment
from reconciler.validate import Snapshot
from tests.hostile.statements import Sacred, check

OUTSIDE = ("postgres", "root", "app_service", "app_readonly", "PUBLIC", "pg_monitor",
           "mysql.sys", 'we"ird', "semi;colon", "ünïcode")


def _outside(prefix: str) -> list[str]:
    """Names that look like the namespace but are not in it."""
    return [prefix[:-1], prefix.upper(), prefix.upper() + "alice_readonly", "x" + prefix + "bob",
            " " + prefix + "bob", prefix[0].upper() + prefix[1:] + "bob"]


def build_actual(snapshot: Snapshot, target: Target, now: datetime, rnd: random.Random,
                 flavor: str) -> tuple[ActualState, Sacred]:
    prefix, mysql = target.role_prefix, target.engine == "mysql"
    desired = desired_state(snapshot, target, now)
    groups = group_roles(snapshot)
    admin = rnd.choice([prefix + "admin", "jitgrant_admin", "postgres"])
    sacred: set[str] = {admin}
    roles: dict[str, ActualRole] = {}
    ids = iter(range(1000, 100000))

    def add(role: ActualRole, *, protected: bool = False) -> None:
        if mysql:
            user = role.user or role.name
            host = "" if role.is_role else role.host
            key = account_key(user, host)
            role = replace(role, name=key, user=user, host=host,
                           session_ids=tuple(next(ids) for _ in range(role.sessions)))
        roles[role.name] = role
        if protected:
            sacred.add(role.user or role.name)

    for name in (*OUTSIDE, *_outside(prefix)):
        if not name.startswith(prefix):
            add(ActualRole(name, superuser=name in ("postgres", "root"), sessions=1,
                           member_of=frozenset(list(groups)[:1])), protected=True)
    if not mysql:
        add(ActualRole(prefix + "root", superuser=True, sessions=1), protected=True)
        add(ActualRole(prefix + "elsewhere", comment=f"jitgrant: {target.name}x: bob (ro) state 1",
                       sessions=1), protected=True)
        if prefix == "pg_":
            add(ActualRole("pg_read_all_data", can_login=False), protected=True)
    for name in sorted(target.never_touch):
        add(ActualRole(name, comment=f"jitgrant: {target.name}: x (y) state 1", sessions=2),
            protected=True)
    add(ActualRole(admin, superuser=rnd.random() < 0.5, createrole=True, host="localhost"),
        protected=True)
    sacred_groups = {g for g in groups if not g.startswith(prefix) or g in target.never_touch}
    for group in sorted(groups):
        if group.startswith(prefix) and group not in target.never_touch and group not in roles:
            add(ActualRole(group, can_login=False, is_role=True))  # in the namespace: jitgrant's

    for name, want in sorted(desired.logins.items()):
        if name in roles:
            continue  # a collision with a protected role: the plan must leave it alone
        fate = rnd.randrange(4)
        if fate == 0:
            continue  # to be created
        role = ActualRole(name, valid_until=want.expires, connection_limit=want.connection_limit,
                          verifier=want.verifier, comment=marker_comment(want, target.name),
                          member_of=frozenset(want.roles), default_roles=frozenset(want.roles))
        if fate >= 2:  # drifted in every way at once
            role = replace(role, superuser=fate == 3, createrole=True, bypassrls=True,
                           can_login=False, valid_until=want.expires - timedelta(days=9),
                           connection_limit=None, verifier="stolen", has_config=True,
                           config_databases=("sales",), locked=True, direct_privileges=True,
                           member_of=frozenset({*list(want.roles)[1:], "app_admin", "pg_write"}),
                           admin_of=frozenset(want.roles), default_roles=frozenset({"app_admin"}),
                           members=frozenset({admin, "app_service", 'evil"member'}),
                           events=(f"ops.{EVENT_PREFIX}{name}", "ops.jitgrant_expire_stale"))
        add(role)
    for n, (name, known) in enumerate(sorted(desired.known.items())):
        # (A name with NUL comes from an invalid grant file; no server has such a role.)
        if name not in desired.logins and name not in roles and "\0" not in name:
            add(ActualRole(name, comment=marker_comment_for(target, known.grantee),
                           depends_in=("", "sales") if n % 2 else (), sessions=n % 3,
                           member_of=frozenset(list(groups)[:2]), members=frozenset({admin})))
    for extra in ("ghost_readonly", "x", "'; DROP ROLE postgres; --", 'q"uote', "back\\slash",
                  "ü" * 40):
        add(ActualRole(prefix + extra, comment=f"jitgrant: {target.name}: ghost (x) state 0",
                       depends_in=("", "sales"), sessions=2, member_of=frozenset({"app_admin"}),
                       members=frozenset({"app_service", admin})))
    if mysql:
        add(ActualRole(prefix + "bob_readonly", host="localhost", sessions=1))
        add(ActualRole(prefix + "role", is_role=True, can_login=False))
    existing = frozenset(g for g in groups if rnd.random() < 0.9)
    state = ActualState(
        roles=MappingProxyType(roles), existing_groups=existing,
        dangerous_groups=MappingProxyType({g: "is a superuser" for g in sorted(existing)
                                           if rnd.random() < 0.2}),
        admin=account_key(admin, "localhost") if mysql else admin,
        admin_is_superuser=roles[account_key(admin, "localhost") if mysql else admin].superuser,
        database="postgres", superusers=frozenset(r.name for r in roles.values() if r.superuser),
        database_owners=MappingProxyType({"postgres": "postgres", "sales": "sales_owner"}),
        admin_user=admin if mysql else "", server_version=rnd.choice([150000, 160000, 180000]),
        event_scheduler=True, flavor=flavor, event_schema="ops" if mysql else None)
    return state, Sacred(frozenset(sacred), frozenset(sacred_groups))


def marker_comment_for(target: Target, grantee: str) -> str:
    return f"jitgrant: {target.name}: {grantee} (x) state 000000000000"


def plan_everything(snapshot: Snapshot, now: datetime, seed: int) -> list[TargetPlan]:
    """Plan and render every target against a hostile server, in each engine's dialects, and
    check every statement. Returns the plans (for the callers' own checks)."""
    rnd = random.Random(seed)
    plans = []
    for target in snapshot.policy.targets.values():
        flavors = ["postgres"] if target.engine == "postgres" else ["mariadb", "mysql"]
        for flavor in flavors:
            actual, sacred = build_actual(snapshot, target, now, rnd, flavor)
            plan = diff(desired_state(snapshot, target, now), actual, now)
            statements = ENGINES[target.engine].render(plan, actual)
            check(plan, statements, actual, sacred)
            check_fail_closed(snapshot, plan, now)
            check_no_dangerous_group(snapshot, plan, actual)
            for problem in plan.problems:
                check_problem(problem)
            plans.append(plan)
    return plans


def check_fail_closed(snapshot: Snapshot, plan: TargetPlan, now: datetime) -> None:
    """Only valid grant files of active people, under valid policies, give access."""
    bad = {p.path for p in snapshot.problems if p.severity == "error"}
    for action in plan.actions:
        if action.kind in ("create", "update"):
            assert snapshot.policy.valid, f"{action.kind} under invalid policies"
            assert action.desired is not None
            for grant in action.desired.grants:
                assert grant.path not in bad, f"{action.kind} from invalid {grant.path}"
                person = snapshot.policy.people[grant.grantee]
                assert person.active and grant.is_current(now)


def check_no_dangerous_group(snapshot: Snapshot, plan: TargetPlan, actual: ActualState) -> None:
    """A superuser-equivalent group role is granted only by a level saying dangerous: true."""
    for action in plan.actions:
        if action.kind in ("create", "update") and action.desired is not None:
            level = snapshot.policy.access[action.desired.access]
            bad = set(action.desired.roles) & set(actual.dangerous_groups)
            assert level.dangerous or not bad, f"{action.login} granted {bad}"


def check_problem(problem: Problem, files: dict[str, bytes] | None = None) -> None:
    """One printable line, `path:line: message`, at a line the file has."""
    text = str(problem)
    assert text.isprintable(), repr(text)
    assert problem.message.strip(), problem
    assert problem.severity in ("error", "warning"), problem
    assert problem.line >= 0, problem
    if files is not None and problem.path in files:
        lines = LINE_BREAKS.split(files[problem.path].decode("utf-8", "replace"))
        assert 1 <= problem.line <= max(1, len(lines) - (lines[-1] == "")), problem


LINE_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # YAML 1.1's, which libyaml counts
