"""The pure plan: desired state from grants at `now`, diffed against a hand-built actual state.
Also login names and the PostgreSQL engine's pure rendering of a plan into statements."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.engines.base import PHASES
from reconciler.engines.postgres import PostgresEngine, disarm_sql
from reconciler.model import (AccessLevel, ActualRole, ActualState, DesiredLogin, Grant, Person,
                              Policy, Target, login_name)
from reconciler.plan import (Action, Changes, TargetPlan, desired_state, diff, fingerprint_of,
                             marker_comment)
from reconciler.validate import RawGrant, Snapshot

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ADMIN = "jitgrant_admin"
TARGET = Target(name="db1", engine="postgres", dsn_env="JG_DSN", environment="production",
                role_prefix="jit_", path="policies/main.yaml", line=2)
LEVELS = {
    "readonly": AccessLevel("readonly", ("app_readonly",), timedelta(hours=8),
                            connection_limit=3),
    "readwrite": AccessLevel("readwrite", ("app_readonly", "app_readwrite"),
                             timedelta(hours=2)),
}
PEOPLE = {"alice": Person("alice", groups=("sre",)), "bob": Person("bob", groups=("sre",)),
          "carol": Person("carol", active=False)}
GROUPS = frozenset({"app_readonly", "app_readwrite"})
SCRAM_A = "SCRAM-SHA-256$4096:c2FsdA==$" + "A" * 43 + "=:" + "B" * 43 + "="
SCRAM_B = "SCRAM-SHA-256$4096:c2FsdA==$" + "C" * 43 + "=:" + "D" * 43 + "="
ALICE = "jit_alice_readonly"


def make_grant(grantee: str = "alice", access: str = "readonly", *, hours: float = 2,
               starts: datetime | None = None, verifier: str | None = None,
               path: str | None = None, target: str = "db1") -> Grant:
    return Grant(path=path or f"grants/{target}/{grantee}-{access}.yaml", grantee=grantee,
                 target=target, access=access, expires=NOW + timedelta(hours=hours),
                 reason="INC-1", starts=starts, password_verifier=verifier)


def snap(*grants: Grant, inactive: tuple[Grant, ...] = (), invalid: tuple[RawGrant, ...] = (),
         valid: bool = True, target: Target = TARGET) -> Snapshot:
    pol = Policy(MappingProxyType({target.name: target}), MappingProxyType(LEVELS),
                 MappingProxyType(PEOPLE), valid=valid)
    return Snapshot(pol, list(grants), [], list(invalid), list(inactive), "c" * 40)


def actual(*roles: ActualRole, groups: frozenset[str] = GROUPS, admin: str = ADMIN,
           admin_is_superuser: bool = True, version: int = 150000,
           owners: dict[str, str] | None = None) -> ActualState:
    return ActualState(roles=MappingProxyType({r.name: r for r in roles}),
                       existing_groups=groups, admin=admin,
                       admin_is_superuser=admin_is_superuser, database="postgres",
                       database_owners=MappingProxyType(owners or {"postgres": "postgres"}),
                       server_version=version)


def desired_login(snapshot: Snapshot, name: str = ALICE, target: Target = TARGET) -> DesiredLogin:
    return desired_state(snapshot, target, NOW).logins[name]


def in_sync(want: DesiredLogin, **changes: Any) -> ActualRole:
    """The role exactly as jitgrant would have left it for `want`, then `changes` applied."""
    role = ActualRole(name=want.name, valid_until=want.expires,
                      connection_limit=want.connection_limit, verifier=want.verifier,
                      comment=marker_comment(want, "db1"), member_of=frozenset(want.roles))
    return dataclasses.replace(role, **changes)


def managed(name: str, **fields: Any) -> ActualRole:
    return ActualRole(name=name, comment=f"jitgrant: someone (something) state {'0' * 12}",
                      **fields)


def plan_for(snapshot: Snapshot, state: ActualState, target: Target = TARGET) -> TargetPlan:
    return diff(desired_state(snapshot, target, NOW), state, NOW)


def summary(plan: TargetPlan) -> list[tuple[str, str, str]]:
    return [(a.kind, a.login, a.cause) for a in plan.actions]


# -- creating --------------------------------------------------------------------------------


def test_current_grant_without_login_is_created() -> None:
    g = make_grant(verifier=SCRAM_A)
    plan = plan_for(snap(g), actual())
    assert summary(plan) == [("create", ALICE, "granted")]
    [action] = plan.actions
    assert (action.grantee, action.access, action.expires) == ("alice", "readonly", g.expires)
    assert action.grant_files == (g.path,)
    assert action.desired is not None
    assert action.desired.roles == ("app_readonly",)
    assert action.desired.connection_limit == 3
    assert action.desired.verifier == SCRAM_A
    assert plan.problems == ()


def test_grants_for_other_targets_are_ignored() -> None:
    other = make_grant(target="db2")
    assert plan_for(snap(other), actual()).actions == ()


def test_login_in_sync_is_a_no_op() -> None:
    s = snap(make_grant(verifier=SCRAM_A))
    plan = plan_for(s, actual(in_sync(desired_login(s))))
    assert plan.actions == () and plan.problems == ()


def test_admin_as_member_of_the_login_is_not_drift() -> None:
    # PostgreSQL 16 makes the CREATEROLE role that created a login a member of it.
    s = snap(make_grant())
    assert plan_for(s, actual(in_sync(desired_login(s), members=frozenset({ADMIN})))).actions == ()


def test_unknown_verifier_is_not_compared() -> None:
    s = snap(make_grant(verifier=SCRAM_A))
    role = in_sync(desired_login(s), verifier=None, verifier_known=False)
    assert plan_for(s, actual(role)).actions == ()


# -- drift -----------------------------------------------------------------------------------

DRIFT = [
    ({"createdb": True}, Changes(attributes=True)),
    ({"createrole": True}, Changes(attributes=True)),
    ({"replication": True}, Changes(attributes=True)),
    ({"bypassrls": True}, Changes(attributes=True)),
    ({"can_login": False}, Changes(attributes=True)),
    ({"inherit": False}, Changes(attributes=True)),
    ({"valid_until": NOW + timedelta(days=365)}, Changes(valid_until=True)),
    ({"valid_until": None}, Changes(valid_until=True)),
    ({"verifier": SCRAM_B}, Changes(password=True)),
    ({"verifier": None}, Changes(password=True)),
    ({"connection_limit": 50}, Changes(connection_limit=True)),
    ({"connection_limit": None}, Changes(connection_limit=True)),
    ({"member_of": frozenset({"app_readonly", "app_readwrite"})},
     Changes(revoke_roles=("app_readwrite",))),
    ({"member_of": frozenset()}, Changes(grant_roles=("app_readonly",))),
    ({"members": frozenset({"jit_bob_readonly", ADMIN})},
     Changes(revoke_members=("jit_bob_readonly",))),
    ({"has_config": True}, Changes(reset_config=True)),
]


@pytest.mark.parametrize(("change", "expected"), DRIFT, ids=[str(d[0]) for d in DRIFT])
def test_each_kind_of_drift_is_put_back(change: dict[str, Any], expected: Changes) -> None:
    s = snap(make_grant(verifier=SCRAM_A))
    want = desired_login(s)
    plan = plan_for(s, actual(in_sync(want, **change)))
    assert summary(plan) == [("update", ALICE, "drift")]
    [action] = plan.actions
    assert action.changes == expected
    assert action.desired == want and action.actual is not None


def test_changed_comment_is_put_back() -> None:
    s = snap(make_grant())
    plan = plan_for(s, actual(in_sync(desired_login(s), comment="hand-written note")))
    assert [(a.kind, a.changes) for a in plan.actions] == [("update", Changes(comment=True))]
    # Without our marker nothing proves the login was in this state before: not "drift".
    assert plan.actions[0].cause == "granted"


def test_attribute_drift_on_a_managed_superuser_when_admin_is_superuser() -> None:
    s = snap(make_grant())
    plan = plan_for(s, actual(in_sync(desired_login(s), superuser=True), admin_is_superuser=True))
    assert summary(plan) == [("update", ALICE, "drift")]
    assert plan.actions[0].changes == Changes(attributes=True)


def test_changed_grant_is_an_update_caused_by_the_grant_not_drift() -> None:
    old = snap(make_grant(hours=2))
    new = snap(make_grant(hours=4))
    plan = plan_for(new, actual(in_sync(desired_login(old))))
    assert summary(plan) == [("update", ALICE, "granted")]
    assert plan.actions[0].changes == Changes(valid_until=True, comment=True)


def test_fingerprint_tells_drift_from_a_new_grant() -> None:
    s = snap(make_grant())
    want = desired_login(s)
    role = in_sync(want)
    assert fingerprint_of(role) == want.fingerprint
    assert fingerprint_of(dataclasses.replace(role, comment=None)) is None
    other = desired_login(snap(make_grant(verifier=SCRAM_B)))
    assert other.fingerprint != want.fingerprint


def test_changes_describe_every_difference() -> None:
    changes = Changes(attributes=True, password=True, grant_roles=("a",), revoke_roles=("b",),
                      revoke_members=("c",))
    assert changes.describe() == ["login attributes", "password", "grant a", "revoke b",
                                  "remove member c"]
    assert changes and not Changes()


# -- revoking --------------------------------------------------------------------------------


def test_expired_grant_revokes_its_login() -> None:
    g = make_grant(hours=-1)
    plan = plan_for(snap(g), actual(managed(ALICE)))
    assert summary(plan) == [("revoke", ALICE, "expired")]
    action = plan.actions[0]
    assert (action.grantee, action.access, action.expires) == ("alice", "readonly", g.expires)
    assert action.grant_files == (g.path,)


def test_removed_grant_file_revokes_its_login() -> None:
    assert summary(plan_for(snap(), actual(managed(ALICE)))) == [("revoke", ALICE, "removed")]


def test_offboarded_grantee_loses_the_login() -> None:
    g = make_grant("carol")
    plan = plan_for(snap(inactive=(g,)), actual(managed("jit_carol_readonly")))
    assert summary(plan) == [("revoke", "jit_carol_readonly", "offboarded")]
    assert plan.actions[0].grant_files == (g.path,)


def test_invalid_grant_file_revokes_its_login() -> None:
    raw = RawGrant("grants/db1/alice.yaml", "alice", "db1", "readonly", None)
    plan = plan_for(snap(invalid=(raw,)), actual(managed(ALICE)))
    assert summary(plan) == [("revoke", ALICE, "invalid")]
    assert plan.actions[0].grant_files == ("grants/db1/alice.yaml",)


def test_invalid_grant_with_a_wrong_target_is_matched_by_its_folder() -> None:
    raw = RawGrant("grants/db1/alice.yaml", "alice", "db-typo", "readonly", None)
    assert summary(plan_for(snap(invalid=(raw,)), actual(managed(ALICE)))) == [
        ("revoke", ALICE, "invalid")]


def test_role_in_the_namespace_without_marker_is_unknown() -> None:
    role = ActualRole(name="jit_handmade", comment="made by hand")
    assert summary(plan_for(snap(), actual(role))) == [("revoke", "jit_handmade", "unknown")]
    bare = ActualRole(name="jit_bare")
    assert summary(plan_for(snap(), actual(bare))) == [("revoke", "jit_bare", "unknown")]


def test_login_whose_grant_has_not_started_is_revoked_and_not_created() -> None:
    future = make_grant(starts=NOW + timedelta(hours=1), hours=3)
    assert plan_for(snap(future), actual()).actions == ()
    plan = plan_for(snap(future), actual(managed(ALICE)))
    assert [(a.kind, a.login) for a in plan.actions] == [("revoke", ALICE)]


def test_grant_that_started_is_created() -> None:
    started = make_grant(starts=NOW - timedelta(minutes=1))
    assert summary(plan_for(snap(started), actual())) == [("create", ALICE, "granted")]


def test_grant_expiring_exactly_now_is_not_current() -> None:
    g = make_grant(hours=0)
    assert plan_for(snap(g), actual()).actions == ()
    assert summary(plan_for(snap(g), actual(managed(ALICE)))) == [("revoke", ALICE, "expired")]


def test_revoke_carries_the_actual_role() -> None:
    role = managed(ALICE, sessions=2, depends_in=("postgres",))
    [action] = plan_for(snap(), actual(role)).actions
    assert action.actual == role


# -- overlapping grants ----------------------------------------------------------------------


def test_overlapping_grants_share_the_login_until_the_latest_expiry() -> None:
    short = make_grant(hours=2, verifier=SCRAM_A, path="grants/db1/b-short.yaml")
    long = make_grant(hours=5, verifier=SCRAM_B, path="grants/db1/a-long.yaml")
    plan = plan_for(snap(short, long), actual())
    [action] = plan.actions
    assert (action.kind, action.login, action.expires) == ("create", ALICE, long.expires)
    assert action.desired is not None and action.desired.verifier == SCRAM_B
    assert action.grant_files == ("grants/db1/a-long.yaml", "grants/db1/b-short.yaml")


def test_verifier_comes_from_the_latest_expiry_among_grants_that_have_one() -> None:
    """A grant asked for by someone else carries no verifier (issue 11, finding 11): it must
    not take away the password the grantee gave the login."""
    short = make_grant(hours=2, verifier=SCRAM_A, path="grants/db1/1.yaml")
    long = make_grant(hours=5, path="grants/db1/2.yaml")
    want = desired_login(snap(short, long))
    assert (want.verifier, want.expires) == (SCRAM_A, long.expires)
    assert desired_login(snap(make_grant(hours=2, path="grants/db1/1.yaml"), long)).verifier \
        is None


def test_overlapping_grant_that_has_not_started_does_not_count() -> None:
    now_grant = make_grant(hours=2, verifier=SCRAM_A, path="grants/db1/1.yaml")
    later = make_grant(hours=6, starts=NOW + timedelta(hours=1), verifier=SCRAM_B,
                       path="grants/db1/2.yaml")
    want = desired_login(snap(now_grant, later))
    assert (want.expires, want.verifier) == (now_grant.expires, SCRAM_A)
    assert [g.path for g in want.grants] == ["grants/db1/1.yaml"]


def test_expired_and_current_grant_for_the_same_login_keep_it() -> None:
    old = make_grant(hours=-3, path="grants/db1/old.yaml")
    new = make_grant(hours=1, path="grants/db1/new.yaml")
    s = snap(old, new)
    assert plan_for(s, actual(in_sync(desired_login(s)))).actions == ()


def test_different_access_levels_are_different_logins() -> None:
    plan = plan_for(snap(make_grant(), make_grant(access="readwrite")), actual())
    assert sorted(a.login for a in plan.actions) == ["jit_alice_readonly", "jit_alice_readwrite"]


# -- protection ------------------------------------------------------------------------------


def test_the_admin_role_is_never_touched() -> None:
    admin = ActualRole(name="jit_admin", createrole=True)
    plan = plan_for(snap(), actual(admin, admin="jit_admin"))
    assert plan.actions == () and plan.problems == ()


def test_the_admin_role_with_our_marker_is_reported_not_touched() -> None:
    plan = plan_for(snap(), actual(managed("jit_admin"), admin="jit_admin"))
    assert plan.actions == ()
    [problem] = plan.problems
    assert "jit_admin is left alone: it is the reconciler's own role" in problem.message
    assert (problem.path, problem.line) == ("policies/main.yaml", 2)


def test_pg_roles_are_never_touched() -> None:
    target = dataclasses.replace(TARGET, role_prefix="pg_")
    roles = [ActualRole(name="pg_monitor", can_login=False), managed("pg_read_all_data")]
    plan = plan_for(snap(target=target), actual(*roles), target)
    assert plan.actions == ()
    assert [p.message for p in plan.problems] == [
        "target db1: login pg_read_all_data is left alone: pg_ roles belong to the server"]


def test_never_touch_roles_survive_even_with_a_grant() -> None:
    target = dataclasses.replace(TARGET, never_touch=frozenset({"jit_keep", ALICE}))
    s = snap(make_grant(), target=target)
    roles = [ActualRole(name="jit_keep", createdb=True), ActualRole(name=ALICE, superuser=False)]
    plan = plan_for(s, actual(*roles), target)
    assert plan.actions == ()
    assert [(p.severity, p.message) for p in plan.problems] == [
        ("error", f"target db1: login {ALICE} is left alone: it is listed in never_touch"),
        ("warning", "target db1: login jit_keep is left alone: it is listed in never_touch; "
                    "it can log in, and no grant ends that")]


def test_superuser_without_marker_is_never_touched_and_shown_when_it_can_log_in() -> None:
    plan = plan_for(snap(), actual(ActualRole(name="jit_root", superuser=True)))
    assert plan.actions == ()
    assert [(p.severity, p.message) for p in plan.problems] == [
        ("warning", "target db1: login jit_root is left alone: it is a superuser; it can log "
                    "in, and no grant ends that")]


def test_protected_roles_that_cannot_log_in_stay_quiet() -> None:
    target = dataclasses.replace(TARGET, never_touch=frozenset({"jit_group"}))
    roles = [ActualRole(name="jit_group", can_login=False),
             ActualRole(name="jit_root", superuser=True, can_login=False),
             ActualRole(name="jit_admin", createrole=True),
             ActualRole(name="outside_root", superuser=True)]
    plan = plan_for(snap(target=target), actual(*roles, admin="jit_admin"), target)
    assert plan.actions == () and plan.problems == ()


def test_a_mysql_administrator_in_the_namespace_is_shown_unless_locked() -> None:
    target = dataclasses.replace(TARGET, engine="mysql")
    roles = [ActualRole(name="jit_adm", user="jit_adm", superuser=True),
             ActualRole(name="jit_locked", user="jit_locked", superuser=True, locked=True),
             ActualRole(name="jit_role@", user="jit_role", host="", superuser=True,
                        is_role=True)]
    state = dataclasses.replace(actual(*roles), flavor="mariadb")
    plan = plan_for(snap(target=target), state, target)
    assert plan.actions == ()
    assert [(p.severity, p.message) for p in plan.problems] == [
        ("warning", "target db1: login jit_adm is left alone: it administers the server "
                    "(SUPER, CREATE USER or GRANT OPTION on *.*); it can log in, and no grant "
                    "ends that")]


def test_managed_superuser_is_revoked_when_admin_is_superuser() -> None:
    role = managed("jit_escalated", superuser=True)
    plan = plan_for(snap(), actual(role, admin_is_superuser=True))
    assert summary(plan) == [("revoke", "jit_escalated", "removed")]


def test_managed_superuser_is_left_alone_when_admin_is_not_superuser() -> None:
    role = managed("jit_escalated", superuser=True)
    plan = plan_for(snap(), actual(role, admin_is_superuser=False))
    assert plan.actions == ()
    assert [p.message for p in plan.problems] == [
        "target db1: login jit_escalated is left alone: it is a superuser, and putting it "
        "back takes a superuser reconciler"]


def test_desired_login_that_is_a_superuser_is_not_updated_by_a_non_superuser_admin() -> None:
    s = snap(make_grant())
    plan = plan_for(s, actual(in_sync(desired_login(s), superuser=True), admin_is_superuser=False))
    assert plan.actions == ()
    assert len(plan.problems) == 1


# -- fail closed -----------------------------------------------------------------------------


def test_missing_group_role_is_a_problem_and_no_action() -> None:
    g = make_grant()
    plan = plan_for(snap(g), actual(groups=frozenset({"app_readwrite"})))
    assert plan.actions == ()
    [problem] = plan.problems
    assert problem.path == g.path and problem.severity == "error"
    assert "group role app_readonly does not exist on target db1" in problem.message


def test_missing_group_role_problem_prints_as_path_line_message() -> None:
    plan = plan_for(snap(make_grant()), actual(groups=frozenset()))
    [problem] = plan.problems
    assert re.match(r"^[^:]+:\d+: .+$", str(problem)), str(problem)


def test_missing_group_role_does_not_revoke_an_existing_login() -> None:
    s = snap(make_grant())
    role = in_sync(desired_login(s), connection_limit=99)
    plan = plan_for(s, actual(role, groups=frozenset()))
    assert plan.actions == () and len(plan.problems) == 1


DANGER = MappingProxyType({"app_readwrite": "is a superuser"})


def test_a_superuser_equivalent_group_role_is_refused_like_a_missing_one() -> None:
    g = make_grant("bob", "readwrite")
    state = dataclasses.replace(actual(), dangerous_groups=DANGER)
    plan = plan_for(snap(g, make_grant()), state)
    assert summary(plan) == [("create", ALICE, "granted")]  # the other level is granted
    [problem] = plan.problems
    assert problem.path == g.path and problem.severity == "error"
    assert problem.message == ("group role app_readwrite is a superuser on target db1: access "
                               "level 'readwrite' needs `dangerous: true` to grant it; grant "
                               "refused")


def test_an_existing_login_whose_group_became_superuser_equivalent_is_revoked() -> None:
    s = snap(make_grant("bob", "readwrite"))
    role = in_sync(desired_login(s, "jit_bob_readwrite"))
    state = dataclasses.replace(actual(role), dangerous_groups=DANGER)
    assert summary(plan_for(s, state)) == [("revoke", "jit_bob_readwrite", "invalid")]


def test_dangerous_true_grants_a_superuser_equivalent_group_role() -> None:
    level = dataclasses.replace(LEVELS["readwrite"], dangerous=True)
    s = snap(make_grant("bob", "readwrite"))
    s.policy = dataclasses.replace(s.policy, access=MappingProxyType({**LEVELS,
                                                                      "readwrite": level}))
    state = dataclasses.replace(actual(), dangerous_groups=DANGER)
    plan = plan_for(s, state)
    assert summary(plan) == [("create", "jit_bob_readwrite", "granted")]
    assert plan.problems == ()


def test_invalid_policy_only_revokes() -> None:
    current = make_grant(path="grants/db1/current.yaml")
    expired = make_grant("bob", hours=-1, path="grants/db1/expired.yaml")
    new = make_grant("bob", "readwrite", path="grants/db1/new.yaml")
    s = snap(current, expired, new, valid=False)
    drifted = in_sync(desired_login(s), connection_limit=99, createdb=True)
    roles = [drifted, managed("jit_bob_readonly"), ActualRole(name="jit_stranger"),
             managed("jit_gone_readonly")]
    plan = plan_for(s, actual(*roles))
    assert sorted(summary(plan)) == [
        ("revoke", "jit_bob_readonly", "expired"),
        ("revoke", "jit_gone_readonly", "removed"),
        ("revoke", "jit_stranger", "unknown"),
    ]


def test_invalid_policy_keeps_logins_whose_grants_are_still_current() -> None:
    s = snap(make_grant(), valid=False)
    assert plan_for(s, actual(managed(ALICE))).actions == ()
    assert desired_state(s, TARGET, NOW).may_grant is False


def test_invalid_policy_still_revokes_a_person_marked_inactive() -> None:
    carol = make_grant("carol")  # carol is in people with active: false
    s = snap(inactive=(carol,), valid=False)
    plan = plan_for(s, actual(managed("jit_carol_readonly")))
    assert summary(plan) == [("revoke", "jit_carol_readonly", "offboarded")]


def test_invalid_policy_keeps_a_person_who_is_only_missing_from_people() -> None:
    # A broken people file must not revoke everyone: only an explicit `active: false` does.
    dave = make_grant("dave")
    s = snap(inactive=(dave,), valid=False)
    assert plan_for(s, actual(managed("jit_dave_readonly"))).actions == ()
    assert summary(plan_for(snap(inactive=(dave,)), actual(managed("jit_dave_readonly")))) == [
        ("revoke", "jit_dave_readonly", "offboarded")]


# -- login names -----------------------------------------------------------------------------


def test_login_name_is_lowercased() -> None:
    assert login_name("jit_", "Alice", "ReadOnly", "postgres") == "jit_alice_readonly"
    assert login_name("JIT_", "bob", "rw", "mysql") == "jit_bob_rw"


def _suffix(full: str) -> str:
    return "_" + hashlib.sha256(full.encode()).hexdigest()[:6]


def test_login_name_at_the_limit_is_kept_whole() -> None:
    grantee = "a" * (63 - len("jit__readonly"))
    name = login_name("jit_", grantee, "readonly", "postgres")
    assert name == f"jit_{grantee}_readonly" and len(name) == 63


def test_long_postgres_name_is_cut_to_63_bytes_with_a_hash() -> None:
    grantee = "a" * 60
    full = f"jit_{grantee}_readonly"
    name = login_name("jit_", grantee, "readonly", "postgres")
    assert len(name.encode()) == 63
    assert name == full[:56] + _suffix(full)


def test_long_mysql_name_is_cut_to_32_characters_with_a_hash() -> None:
    grantee = "b" * 30
    full = f"jit_{grantee}_readonly"
    name = login_name("jit_", grantee, "readonly", "mysql")
    assert len(name) == 32
    assert name == full[:25] + _suffix(full)


def test_names_that_differ_after_the_cut_stay_different() -> None:
    a = login_name("jit_", "x" * 70, "readonly", "postgres")
    b = login_name("jit_", "x" * 70, "readwrite", "postgres")
    assert a != b and a[:56] == b[:56]


def test_hash_is_of_the_full_lowercased_name() -> None:
    assert login_name("jit_", "A" * 70, "readonly", "postgres") == \
        login_name("jit_", "a" * 70, "readonly", "postgres")


@pytest.mark.parametrize("char", ["\u00e9", "\u65e5", "\U0001f600"])
def test_multibyte_names_are_never_cut_mid_character(char: str) -> None:
    grantee = char * 40
    full = f"jit_{grantee}_readonly"
    name = login_name("jit_", grantee, "readonly", "postgres")
    assert len(name.encode()) <= 63
    assert name.endswith(_suffix(full))
    body = name[:-7]
    assert full.startswith(body)
    assert body.encode().decode() == body
    # Cut as late as possible: one more character would not fit.
    assert len((full[:len(body) + 1]).encode()) + 7 > 63


def test_mysql_counts_characters_not_bytes() -> None:
    name = login_name("jit_", "\u00e9" * 10, "ro", "mysql")
    assert name == "jit_" + "\u00e9" * 10 + "_ro"  # 17 characters, 27 bytes: fits


# -- the PostgreSQL engine's pure render -----------------------------------------------------


def render(plan: TargetPlan, state: ActualState):  # type: ignore[no-untyped-def]
    return PostgresEngine().render(plan, state)


def test_create_renders_attributes_password_membership_and_comment() -> None:
    g = make_grant(verifier=SCRAM_A)
    state = actual()
    statements = render(plan_for(snap(g), state), state)
    shown = [s.shown for s in statements]
    assert shown[0] == (
        'CREATE ROLE "jit_alice_readonly" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
        "NOREPLICATION NOBYPASSRLS INHERIT PASSWORD '********' CONNECTION LIMIT 3 "
        f"VALID UNTIL '{g.expires.isoformat()}'")
    assert shown[1] == 'GRANT "app_readonly" TO "jit_alice_readonly"'
    assert shown[2].startswith('COMMENT ON ROLE "jit_alice_readonly" IS \'jitgrant: db1: alice ')
    assert {s.phase for s in statements} == {"main"}
    assert {s.action for s in statements} == {0}


def test_verifier_is_in_sql_but_never_shown() -> None:
    s = snap(make_grant(verifier=SCRAM_A))
    state = actual()
    created = render(plan_for(s, state), state)
    drifted = actual(in_sync(desired_login(s), verifier=SCRAM_B))
    updated = render(plan_for(s, drifted), drifted)
    for statements in (created, updated):
        assert any(SCRAM_A in st.sql for st in statements)
        assert all(SCRAM_A not in st.shown and SCRAM_B not in st.shown for st in statements)
        assert any("PASSWORD '********'" in st.shown for st in statements)
        assert all(SCRAM_A not in repr(st) for st in statements)
    assert SCRAM_A not in repr(plan_for(s, state))


def test_no_verifier_means_no_password() -> None:
    state = actual()
    [create, *_] = render(plan_for(snap(make_grant()), state), state)
    assert "PASSWORD NULL" in create.sql and create.sql == create.shown


def test_update_renders_only_what_changed() -> None:
    s = snap(make_grant())
    state = actual(in_sync(desired_login(s), createdb=True, replication=True, has_config=True,
                           member_of=frozenset({"app_readwrite"}),
                           members=frozenset({"jit_bob_readonly"})))
    shown = [st.shown for st in render(plan_for(s, state), state)]
    assert shown == [
        'ALTER ROLE "jit_alice_readonly" WITH NOCREATEDB NOREPLICATION',
        'ALTER ROLE "jit_alice_readonly" RESET ALL',
        'GRANT "app_readonly" TO "jit_alice_readonly"',
        'REVOKE "app_readwrite" FROM "jit_alice_readonly"',
        'REVOKE "jit_alice_readonly" FROM "jit_bob_readonly"',
    ]


def test_membership_revoked_once_per_grantor_on_16() -> None:
    s = snap(make_grant())
    role = in_sync(desired_login(s), member_of=frozenset({"app_readonly", "app_readwrite"}),
                   member_of_grants=(("app_readonly", ADMIN), ("app_readwrite", ADMIN),
                                     ("app_readwrite", "postgres")))
    state = actual(role, version=160000)
    shown = [st.shown for st in render(plan_for(s, state), state)]
    assert shown == ['REVOKE "app_readwrite" FROM "jit_alice_readonly" GRANTED BY "jitgrant_admin"',
                     'REVOKE "app_readwrite" FROM "jit_alice_readonly" GRANTED BY "postgres"']


def test_identifiers_and_literals_with_quotes_are_quoted() -> None:
    hostile = 'jit_a"b\'; DROP ROLE postgres; --'
    state = actual(ActualRole(name=hostile))
    plan = plan_for(snap(), state)
    assert summary(plan) == [("revoke", hostile, "unknown")]
    sql_text = [st.sql for st in render(plan, state)]
    quoted = '"jit_a""b\'; DROP ROLE postgres; --"'
    assert f"ALTER ROLE {quoted} WITH NOLOGIN VALID UNTIL '-infinity'" in sql_text
    assert f"DROP ROLE {quoted}" in sql_text
    assert any("usename = 'jit_a\"b''; DROP ROLE postgres; --'" in t for t in sql_text)


def test_group_role_names_are_quoted() -> None:
    level = AccessLevel("readonly", ('app "ro"',), timedelta(hours=8))
    pol = Policy(MappingProxyType({"db1": TARGET}), MappingProxyType({"readonly": level}),
                 MappingProxyType(PEOPLE))
    s = Snapshot(pol, [make_grant()], [])
    state = actual(groups=frozenset({'app "ro"'}))
    shown = [st.shown for st in render(plan_for(s, state), state)]
    assert 'GRANT "app ""ro""" TO "jit_alice_readonly"' in shown


def test_revoke_ends_sessions_moves_objects_and_drops() -> None:
    role = managed(ALICE, depends_in=("", "postgres", "sales"),
                   member_of=frozenset({"app_readonly"}))
    state = actual(role, owners={"postgres": "postgres", "sales": "sales_owner"})
    statements = render(plan_for(snap(), state), state)
    assert [(st.phase, st.database, st.shown) for st in statements] == [
        ("lockout", None, "ALTER ROLE \"jit_alice_readonly\" WITH NOLOGIN VALID UNTIL "
                          "'-infinity'"),
        ("sessions", None, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                           "WHERE usename = 'jit_alice_readonly' AND pid <> pg_backend_pid()"),
        ("disarm", "sales", disarm_sql(ALICE)),
        ("disarm", None, disarm_sql(ALICE)),
        ("strip", None, 'REVOKE "app_readonly" FROM "jit_alice_readonly"'),
        ("objects", "sales", 'REASSIGN OWNED BY "jit_alice_readonly" TO "sales_owner"'),
        ("objects", "sales", 'DROP OWNED BY "jit_alice_readonly"'),
        ("main", None, 'REASSIGN OWNED BY "jit_alice_readonly" TO "postgres"'),
        ("main", None, 'DROP OWNED BY "jit_alice_readonly"'),
        ("main", None, 'DROP ROLE "jit_alice_readonly"'),
    ]


def test_reassign_owned_to_wins_and_never_goes_to_the_login_itself() -> None:
    target = dataclasses.replace(TARGET, reassign_owned_to="orders_owner")
    state = actual(managed(ALICE, depends_in=("postgres",)))
    shown = [st.shown for st in render(plan_for(snap(target=target), state, target), state)]
    assert 'REASSIGN OWNED BY "jit_alice_readonly" TO "orders_owner"' in shown
    self_owned = actual(managed(ALICE, depends_in=("postgres",)), owners={"postgres": ALICE})
    shown = [st.shown for st in render(plan_for(snap(), self_owned), self_owned)]
    assert f'REASSIGN OWNED BY "jit_alice_readonly" TO "{ADMIN}"' in shown


def test_revoke_always_locks_out_even_a_login_that_cannot_log_in() -> None:
    # VALID UNTIL -infinity too: a later LOGIN by someone else would still find it expired.
    state = actual(managed(ALICE, can_login=False))
    assert [st.phase for st in render(plan_for(snap(), state), state)] == [
        "lockout", "sessions", "main"]


def test_objects_are_never_handed_to_a_superuser() -> None:
    role = managed(ALICE, depends_in=("sales",), member_of=frozenset({"app_readonly"}),
                   members=frozenset({"someone"}))
    state = dataclasses.replace(actual(role, owners={"sales": "postgres"}),
                                superusers=frozenset({"postgres"}))
    plan = plan_for(snap(), state)
    [revoke] = plan.actions
    assert revoke.hold and "superuser postgres" in revoke.hold
    assert any("locked out but not dropped" in p.message for p in plan.problems)
    phases = [(st.phase, st.shown) for st in render(plan, state)]
    assert [p for p, _ in phases] == ["lockout", "sessions", "strip", "strip"]
    assert ("strip", 'REVOKE "jit_alice_readonly" FROM "someone"') in phases


def test_statement_phases_run_lockout_sessions_strip_objects_main() -> None:
    assert PHASES == ("lockout", "sessions", "disarm", "strip", "objects", "main")
    s = snap(make_grant("bob"), make_grant("alice", hours=-1))
    state = actual(managed(ALICE, depends_in=("sales",)), managed("jit_zed_readonly"))
    plan = plan_for(s, state)
    assert [a.kind for a in plan.actions] == ["create", "revoke", "revoke"]
    statements = render(plan, state)
    order = [PHASES.index(st.phase) for st in statements]
    assert order == sorted(order)
    assert [st.phase for st in statements][:2] == ["lockout", "lockout"]
    assert {st.action for st in statements} == {0, 1, 2}
    # Within a phase, actions keep their order.
    mains = [st.action for st in statements if st.phase == "main"]
    assert mains == sorted(mains)


def test_render_of_an_empty_plan_is_empty() -> None:
    assert render(TargetPlan(TARGET, ()), actual()) == []


def test_action_is_plain_data() -> None:
    action = Action(target="db1", kind="revoke", login=ALICE, cause="removed")
    assert dataclasses.replace(action, cause="expired").cause == "expired"
    with pytest.raises(dataclasses.FrozenInstanceError):
        action.kind = "create"  # type: ignore[misc]


@settings(deadline=None)
@given(st.text(min_size=1, max_size=120), st.sampled_from(["postgres", "mysql"]))
def test_any_login_name_fits_its_engine(grantee: str, engine: str) -> None:
    full = f"jit_{grantee}_readonly".lower()
    name = login_name("jit_", grantee, "readonly", engine)
    size = len(name.encode()) if engine == "postgres" else len(name)
    limit = 63 if engine == "postgres" else 32
    assert size <= limit
    assert name == login_name("jit_", grantee, "readonly", engine)
    if (len(full.encode()) if engine == "postgres" else len(full)) <= limit:
        assert name == full
    else:
        assert name.endswith(_suffix(full)) and full.startswith(name[:-7])


def test_a_login_marked_for_another_target_is_left_alone() -> None:
    other = ActualRole(name=ALICE, comment="jitgrant: db2: alice (readonly) state 000000000000")
    plan = plan_for(snap(), actual(other))
    assert plan.actions == ()
    assert any("belongs to target db2" in p.message for p in plan.problems)


def test_the_disarm_block_keeps_a_hostile_login_name_inside_its_quotes() -> None:
    hostile = "jit_x$jitgrant$; DROP ROLE postgres; $jitgrant$'"
    text = disarm_sql(hostile)
    assert text.startswith("DO $jitgrant1$") and text.endswith("$jitgrant1$")
    assert text.count("$jitgrant1$") == 2
    assert "rolname = 'jit_x$jitgrant$; DROP ROLE postgres; $jitgrant$''')" in text


def test_a_held_revoke_disarms_nothing_and_a_non_superuser_borrows_the_login() -> None:
    role = managed(ALICE, depends_in=("sales",), member_of=frozenset({"app_readonly"}))
    state = dataclasses.replace(actual(role, owners={"sales": "sales_owner"}),
                                admin_is_superuser=False, server_version=170000)
    phases = [(st.phase, st.database, st.shown) for st in render(plan_for(snap(), state), state)]
    assert phases[2:4] == [
        ("disarm", None, f'GRANT "jit_alice_readonly" TO "{ADMIN}" WITH INHERIT TRUE, SET FALSE'),
        ("disarm", "sales", disarm_sql(ALICE))]
    held = dataclasses.replace(state, database_owners=MappingProxyType({"sales": "postgres"}),
                               superusers=frozenset({"postgres"}))
    assert "disarm" not in [st.phase for st in render(plan_for(snap(), held), held)]
