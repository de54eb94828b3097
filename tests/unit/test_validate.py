"""Schema and policy rules of SPEC 2.1 and 2.2: one precise problem per mistake, at path:line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from reconciler.credentials import mysql_native_verifier, scram_sha256_verifier
from reconciler.errors import Problem
from reconciler.load import SourceFile
from reconciler.model import Provenance
from reconciler.validate import Context, Snapshot, build_snapshot
from tests.helpers import policy

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
GRANT = "grants/db1/alice.yaml"
POLICY = "policies/main.yaml"
PROBLEM_LINE = re.compile(r"^[^:]+:\d+: .+$")
SCRAM = scram_sha256_verifier("correct horse battery staple", salt=b"0123456789abcdef")
MYSQL_HASH = mysql_native_verifier("correct horse battery staple")


def dump(data: dict[str, Any]) -> bytes:
    # One line per key, so a key's line is its position.
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6).encode()


def stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def grant_data(**fields: Any) -> dict[str, Any]:
    """grantee:1 target:2 access:3 expires:4 reason:5, then extra fields in the order given."""
    data: dict[str, Any] = {"grantee": "alice", "target": "db1", "access": "readonly",
                            "expires": stamp(NOW + timedelta(hours=2)),
                            "reason": "INC-1 look at things"}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def line_of(data: dict[str, Any], key: str) -> int:
    return list(data).index(key) + 1


def snapshot(grants: Mapping[str, dict[str, Any] | bytes] | None = None,
             policies: Mapping[str, dict[str, Any] | bytes] | None = None, *,
             changed: Iterable[str] | None = None,
             provenance: dict[str, Provenance] | None = None, now: datetime = NOW) -> Snapshot:
    policies = {POLICY: policy()} if policies is None else policies
    files = [SourceFile(p, d if isinstance(d, bytes) else dump(d)) for p, d in policies.items()]
    grant_files = [SourceFile(p, d if isinstance(d, bytes) else dump(d))
                   for p, d in (grants or {}).items()]
    ctx = Context(now=now, provenance=provenance or {},
                  changed=None if changed is None else frozenset(changed))
    snap = build_snapshot(files, grant_files, ctx, "0" * 40)
    for found in snap.problems:
        assert PROBLEM_LINE.match(str(found)), str(found)
        assert "\n" not in str(found) and "\r" not in str(found)
    return snap


def committed(at: datetime) -> Provenance:
    return Provenance(commit="c" * 40, author="Alice", author_email="alice@example.com",
                      authored=at, committed=at)


def only_problem(snap: Snapshot) -> Problem:
    assert len(snap.problems) == 1, [str(p) for p in snap.problems]
    return snap.problems[0]


def assert_rejected(data: dict[str, Any], key: str, message: str, path: str = GRANT,
                    **kwargs: Any) -> Problem:
    snap = snapshot({path: data}, **kwargs)
    found = only_problem(snap)
    assert (found.path, found.line, found.severity) == (path, line_of(data, key), "error")
    assert found.message == message
    assert snap.grants == [] and [r.path for r in snap.invalid_grants] == [path]
    return found


# -- the happy path --------------------------------------------------------------------------


def test_valid_grant_and_policy_have_no_problems() -> None:
    data = grant_data(starts=stamp(NOW - timedelta(hours=1)), ticket="INC-1",
                      password_verifier=SCRAM)
    snap = snapshot({GRANT: data})
    assert snap.problems == [] and snap.policy.valid
    [grant] = snap.grants
    assert (grant.grantee, grant.target, grant.access) == ("alice", "db1", "readonly")
    assert grant.expires == NOW + timedelta(hours=2)
    assert grant.starts == NOW - timedelta(hours=1)
    assert grant.password_verifier == SCRAM and grant.ticket == "INC-1"
    assert snap.commit == "0" * 40


def test_policy_is_merged_from_several_files() -> None:
    whole = policy()
    parts = {"policies/targets.yaml": {"targets": whole["targets"]},
             "policies/access.yaml": {"access": whole["access"]},
             "policies/people.yaml": {"people": whole["people"],
                                      "repository": {"policy_owners": ["@acme/security"]}}}
    snap = snapshot({GRANT: grant_data()}, parts)
    assert snap.problems == [] and snap.policy.valid
    assert set(snap.policy.targets) == {"db1"}
    assert set(snap.policy.people) == {"alice", "bob", "carol"}
    assert snap.policy.policy_owners == ("@acme/security",)
    assert snap.policy.targets["db1"].path == "policies/targets.yaml"
    assert snap.policy.access["readonly"].max_duration == timedelta(hours=8)
    assert len(snap.grants) == 1


# -- grant rules -----------------------------------------------------------------------------


def test_unknown_key() -> None:
    data = grant_data(colour="red")
    assert_rejected(data, "colour", "unknown key 'colour'")


def test_missing_required_key() -> None:
    data = grant_data(reason=None)
    found = only_problem(snapshot({GRANT: data}))
    assert (found.line, found.message) == (1, "missing required key 'reason'")


def test_unknown_grantee_in_a_new_grant() -> None:
    data = grant_data(grantee="zed")
    assert_rejected(data, "grantee", "grantee: 'zed' is not in people", changed=[GRANT])


def test_unknown_target() -> None:
    data = grant_data(target="nowhere")
    assert_rejected(data, "target", "target: unknown target 'nowhere'",
                    path="grants/nowhere/alice.yaml")


def test_unknown_access_level() -> None:
    data = grant_data(access="god-mode")
    assert_rejected(data, "access", "access: unknown access level 'god-mode'")


def test_folder_differs_from_target() -> None:
    data = grant_data()
    assert_rejected(data, "target", "target: 'db1' does not match the folder grants/db2/",
                    path="grants/db2/alice.yaml")


@pytest.mark.parametrize("path", ["grants/alice.yaml", "grants/db1/extra/alice.yaml"])
def test_file_outside_grants_target_folder(path: str) -> None:
    snap = snapshot({path: grant_data()})
    found = only_problem(snap)
    assert (found.path, found.line) == (path, 1)
    assert found.message == "grant files belong in grants/<target>/"
    assert snap.grants == []


def test_expires_without_zone() -> None:
    data = grant_data(expires="2026-06-01T14:00:00")
    assert_rejected(data, "expires", "expires: must include a time zone (Z or +HH:MM)")


def test_starts_without_zone() -> None:
    data = grant_data(starts="2026-06-01T11:00:00")
    assert_rejected(data, "starts", "starts: must include a time zone (Z or +HH:MM)")


def test_expires_that_is_not_a_timestamp() -> None:
    data = grant_data(expires="next tuesday")
    found = assert_rejected(data, "expires", "expires: must be an RFC 3339 date and time, like "
                                             "2026-11-21T18:00:00Z")
    assert found.line == 4


@pytest.mark.parametrize("starts", [NOW + timedelta(hours=2), NOW + timedelta(hours=3)])
def test_expires_not_after_starts(starts: datetime) -> None:
    data = grant_data(starts=stamp(starts))
    assert_rejected(data, "expires", "expires: must be after starts")


def test_lifetime_over_max_duration_measured_from_now_without_provenance() -> None:
    data = grant_data(expires=stamp(NOW + timedelta(hours=9)))
    assert_rejected(data, "expires",
                    "expires: the grant lasts 9h, over the 8h allowed for 'readonly'")


def test_lifetime_exactly_max_duration_is_allowed() -> None:
    data = grant_data(expires=stamp(NOW + timedelta(hours=8)))
    assert snapshot({GRANT: data}).problems == []


def test_lifetime_just_over_max_duration_names_a_longer_duration() -> None:
    data = grant_data(expires=stamp(NOW + timedelta(hours=8, seconds=30)))
    found = only_problem(snapshot({GRANT: data}))
    assert found.message.startswith("expires: the grant lasts ")
    assert "lasts 8h," not in found.message


def test_lifetime_is_measured_from_the_commit_not_from_now() -> None:
    # Committed 5h ago for 9h in total: only 4h are left, but the grant asked for 9h.
    data = grant_data(expires=stamp(NOW + timedelta(hours=4)))
    prov = {GRANT: committed(NOW - timedelta(hours=5))}
    assert_rejected(data, "expires",
                    "expires: the grant lasts 9h, over the 8h allowed for 'readonly'",
                    provenance=prov)


def test_lifetime_is_measured_from_starts_when_it_is_after_the_commit() -> None:
    prov = {GRANT: committed(NOW - timedelta(hours=1))}
    starts = NOW + timedelta(days=3)
    ok = grant_data(starts=stamp(starts), expires=stamp(starts + timedelta(hours=8)))
    assert snapshot({GRANT: ok}, provenance=prov).problems == []
    too_long = grant_data(starts=stamp(starts), expires=stamp(starts + timedelta(hours=10)))
    assert_rejected(too_long, "expires",
                    "expires: the grant lasts 10h, over the 8h allowed for 'readonly'",
                    provenance=prov)


def test_lifetime_is_measured_from_the_commit_when_starts_is_before_it() -> None:
    # starts 12h before expiry, but it was only committed 7h before: 7h is what counts.
    prov = {GRANT: committed(NOW - timedelta(hours=1))}
    data = grant_data(starts=stamp(NOW - timedelta(hours=6)),
                      expires=stamp(NOW + timedelta(hours=6)))
    assert snapshot({GRANT: data}, provenance=prov).problems == []


def test_already_past_when_committed() -> None:
    prov = {GRANT: committed(NOW - timedelta(hours=1))}
    data = grant_data(expires=stamp(NOW - timedelta(hours=2)))
    assert_rejected(data, "expires", "expires: was already past when the grant was committed",
                    provenance=prov)


def test_grant_provenance_is_attached() -> None:
    prov = {GRANT: committed(NOW - timedelta(hours=1))}
    snap = snapshot({GRANT: grant_data()}, provenance=prov)
    assert snap.grants[0].provenance == prov[GRANT]


def test_access_level_not_allowed_in_the_environment() -> None:
    data = grant_data(access="staging-only")
    assert_rejected(data, "access", "access: 'staging-only' is not allowed in environment "
                                    "'production' of target 'db1'")


def test_grantee_not_in_allowed_groups() -> None:
    data = grant_data(grantee="bob", access="readwrite")
    assert_rejected(data, "access", "access: 'readwrite' is only for groups sre; bob is in "
                                    "backend")


def test_grantee_in_allowed_groups_passes() -> None:
    data = grant_data(access="readwrite", expires=stamp(NOW + timedelta(hours=2)))
    assert snapshot({GRANT: data}).problems == []


@pytest.mark.parametrize(("engine", "verifier", "expected"), [
    ("postgres", MYSQL_HASH, "password_verifier: must be a SCRAM-SHA-256 verifier"),
    ("postgres", "hunter2", "password_verifier: must be a SCRAM-SHA-256 verifier"),
    ("postgres", "md5" + "0" * 32, "password_verifier: must be a SCRAM-SHA-256 verifier"),
    ("mysql", SCRAM, "password_verifier: must be a mysql_native_password hash"),
    ("mysql", MYSQL_HASH.lower(), "password_verifier: must be a mysql_native_password hash"),
    ("mysql", MYSQL_HASH[:-1], "password_verifier: must be a mysql_native_password hash"),
])
def test_verifier_in_the_wrong_format_for_the_engine(engine: str, verifier: str,
                                                     expected: str) -> None:
    data = grant_data(password_verifier=verifier)
    snap = snapshot({GRANT: data}, {POLICY: policy(engine=engine)})
    found = only_problem(snap)
    assert (found.line, found.severity) == (line_of(data, "password_verifier"), "error")
    assert found.message.startswith(expected)
    assert verifier.strip() not in found.message  # the verifier is never echoed


@pytest.mark.parametrize(("engine", "verifier"), [("postgres", SCRAM + "\n"),
                                                  ("mysql", MYSQL_HASH + "\n")],
                         ids=["postgres", "mysql"])
def test_verifier_with_a_trailing_newline_is_rejected(engine: str, verifier: str) -> None:
    # `password_verifier: |` (a literal block) is an easy way to write this by accident.
    data = grant_data(password_verifier=verifier)
    snap = snapshot({GRANT: data}, {POLICY: policy(engine=engine)})
    assert snap.grants == []


@pytest.mark.parametrize(("engine", "verifier"), [("postgres", SCRAM), ("mysql", MYSQL_HASH)])
def test_verifier_in_the_right_format_passes(engine: str, verifier: str) -> None:
    data = grant_data(password_verifier=verifier)
    assert snapshot({GRANT: data}, {POLICY: policy(engine=engine)}).problems == []


def test_login_listed_in_never_touch_is_rejected() -> None:
    data = grant_data()
    snap = snapshot({GRANT: data}, {POLICY: policy(never_touch=["jit_alice_readonly"])})
    found = only_problem(snap)
    assert found.line == line_of(data, "grantee")
    assert "never_touch" in found.message


# -- new or changed against --base, and inactive grants --------------------------------------


def test_new_grant_with_expiry_in_the_past() -> None:
    # Committed in time, merged after it expired: only a new grant is rejected for that.
    data = grant_data(expires=stamp(NOW - timedelta(minutes=5)))
    prov = {GRANT: committed(NOW - timedelta(hours=1))}
    assert_rejected(data, "expires", "expires: already in the past", changed=[GRANT],
                    provenance=prov)


def test_unchanged_expired_grant_stays_valid() -> None:
    data = grant_data(expires=stamp(NOW - timedelta(minutes=5)))
    prov = {GRANT: committed(NOW - timedelta(hours=1))}
    snap = snapshot({GRANT: data}, changed=[], provenance=prov)
    assert snap.problems == []
    assert [g.path for g in snap.grants] == [GRANT]
    assert not snap.grants[0].is_current(NOW)


def test_new_uncommitted_grant_in_the_past_is_one_problem() -> None:
    data = grant_data(expires=stamp(NOW - timedelta(hours=1)))
    only_problem(snapshot({GRANT: data}, changed=[GRANT]))


def test_new_grant_for_an_inactive_grantee() -> None:
    data = grant_data(grantee="carol")
    assert_rejected(data, "grantee", "grantee: 'carol' is not active", changed=[GRANT])


def test_unchanged_grant_for_an_inactive_grantee_is_only_a_warning() -> None:
    data = grant_data(grantee="carol")
    for changed in (None, ["grants/db1/other.yaml"]):
        snap = snapshot({GRANT: data}, changed=changed)
        found = only_problem(snap)
        assert (found.path, found.line, found.severity) == (GRANT, 1, "warning")
        assert found.message.startswith("grantee: 'carol' is not active; the grant is inactive")
        assert str(found).startswith(f"{GRANT}:1: warning: ")
        assert snap.errors == [] and snap.grants == []
        assert [g.path for g in snap.inactive] == [GRANT]


def test_unchanged_grant_for_someone_removed_from_people_is_inactive() -> None:
    data = grant_data(grantee="dave")
    snap = snapshot({GRANT: data})
    assert only_problem(snap).severity == "warning"
    assert [g.grantee for g in snap.inactive] == ["dave"]


def test_one_bad_grant_does_not_spoil_the_others() -> None:
    good = grant_data()
    bad = grant_data(access="nope")
    snap = snapshot({GRANT: good, "grants/db1/bad.yaml": bad})
    assert [g.path for g in snap.grants] == [GRANT]
    assert [r.path for r in snap.invalid_grants] == ["grants/db1/bad.yaml"]
    raw = snap.invalid_grants[0]
    assert (raw.grantee, raw.target, raw.access) == ("alice", "db1", "nope")


def test_invalid_yaml_grant_is_reported_and_kept_as_invalid() -> None:
    snap = snapshot({GRANT: b"grantee: alice\ntarget: [db1\n"})
    found = only_problem(snap)
    assert found.path == GRANT and found.message.startswith("invalid YAML")
    assert [r.path for r in snap.invalid_grants] == [GRANT]


# -- policy rules ----------------------------------------------------------------------------


def test_name_defined_twice_across_two_policy_files_names_both() -> None:
    first = policy()
    second = {"targets": {"db1": {"engine": "mysql", "dsn_env": "OTHER"}}}
    snap = snapshot(policies={"policies/a.yaml": first, "policies/b.yaml": second})
    found = only_problem(snap)
    assert (found.path, found.line) == ("policies/b.yaml", 2)
    assert "policies/a.yaml" in found.message and "defined twice" in found.message
    assert "policies/a.yaml" in str(found) and "policies/b.yaml" in str(found)
    assert not snap.policy.valid
    assert snap.policy.targets["db1"].engine == "postgres"  # the first definition stands


@pytest.mark.parametrize("section", ["access", "people"])
def test_access_and_people_defined_twice(section: str) -> None:
    whole = policy()
    name = next(iter(whole[section]))
    again = {section: {name: whole[section][name]}}
    snap = snapshot(policies={"policies/a.yaml": whole, "policies/z.yaml": again})
    found = only_problem(snap)
    assert found.path == "policies/z.yaml"
    assert f"{section}.{name} is defined twice" in found.message
    assert "policies/a.yaml" in found.message


def test_invalid_person_handle_is_reported_at_its_own_line() -> None:
    data = policy()
    data["people"]["Bob"] = {"groups": ["sre"]}
    found = only_problem(snapshot(policies={POLICY: data}))
    text = dump(data).decode().splitlines()
    assert found.line == text.index("  Bob:") + 1


def test_hostile_name_defined_twice_stays_one_line() -> None:
    name = "evil\n::error::forged"
    first = policy()
    first["people"][name] = {}
    second: dict[str, Any] = {"people": {name: {}}}
    snap = build_snapshot([SourceFile("policies/a.yaml", dump(first)),
                           SourceFile("policies/b.yaml", dump(second))], [], Context(now=NOW))
    assert all("\n" not in str(p) for p in snap.problems)


@pytest.mark.parametrize("prefix", ["Jit_", "jit", "jit-", "1jit_", "jit_'; drop role x; --_",
                                    "a" * 17 + "_", ""])
def test_invalid_role_prefix(prefix: str) -> None:
    snap = snapshot(policies={POLICY: policy(prefix=prefix)})
    found = only_problem(snap)
    assert found.path == POLICY
    assert found.line == 6  # targets:1 db1:2 engine:3 dsn_env:4 environment:5 role_prefix:6
    assert found.message.startswith("targets.db1.role_prefix: ")
    assert not snap.policy.valid
    assert "db1" not in snap.policy.targets


def test_unknown_key_in_policy() -> None:
    data = policy()
    data["access"]["readonly"]["max_durration"] = "8h"
    snap = snapshot(policies={POLICY: data})
    found = only_problem(snap)
    assert found.message == "access.readonly: unknown key 'max_durration'"
    assert not snap.policy.valid


def test_invalid_max_duration() -> None:
    data = policy()
    data["access"]["readonly"]["max_duration"] = "PT"
    snap = snapshot(policies={POLICY: data})
    found = only_problem(snap)
    assert found.message == ("access.readonly.max_duration: must be a duration like 30m, 8h, "
                             "1h30m, 2d or PT8H")
    assert "readonly" not in snap.policy.access and not snap.policy.valid


def test_expiry_backstop_event_is_only_for_mysql() -> None:
    snap = snapshot(policies={POLICY: policy(expiry_backstop="event")})
    found = only_problem(snap)
    assert "expiry_backstop: event is for mysql targets" in found.message
    assert snapshot(policies={POLICY: policy(engine="mysql",
                                             expiry_backstop="event")}).problems == []


def test_invalid_policy_yaml_makes_the_policy_invalid() -> None:
    snap = snapshot(policies={POLICY: policy(), "policies/broken.yaml": b"people: [\n"})
    assert [p.path for p in snap.problems] == ["policies/broken.yaml"]
    assert not snap.policy.valid
    assert "db1" in snap.policy.targets  # what could be read is still known (for revocation)


def test_no_policy_files_is_an_error() -> None:
    snap = build_snapshot([], [], Context(now=NOW))
    assert [p.message for p in snap.errors] == ["no policy files found under policies/"]
    assert not snap.policy.valid


# -- hostile strings -------------------------------------------------------------------------

HOSTILE = [
    "alice'", 'al"ice', "a; DROP ROLE postgres; --", "x' OR '1'='1", "$(rm -rf /)", "`id`",
    "Alice", "\u00e5lice", "ali\u200bce", "\u202ealice", "alice\nbob", "alice\r\n", "\talice",
    "alice bob", "a" * 64, "a" * 10_000, "", "../../etc/passwd", "alice\u0000", "x\\y", "%s%n",
]


@pytest.mark.parametrize("key", ["grantee", "access"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_rejected_by_the_schema_in_one_line(key: str, value: str) -> None:
    data = grant_data(**{key: value})
    snap = snapshot({GRANT: data})
    found = only_problem(snap)
    assert (found.line, found.severity) == (line_of(data, key), "error")
    assert found.message.startswith(f"{key}: invalid value ")
    assert len(found.message) < 120
    assert snap.grants == [] and snap.inactive == []


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_target_names_are_rejected_by_the_schema(value: str) -> None:
    data = grant_data(target=value)
    snap = snapshot({GRANT: data})
    assert snap.errors
    # The schema says so; a folder mismatch may be reported beside it, on the same line.
    assert any(p.message.startswith("target: invalid value ") for p in snap.problems)
    assert {p.line for p in snap.problems} == {line_of(data, "target")}
    assert snap.grants == []


def test_name_with_a_trailing_newline_is_rejected_by_the_schema() -> None:
    pol = policy()
    pol["people"]["alice\n"] = {"groups": ["sre"]}
    data = grant_data(grantee="alice\n")
    snap = snapshot({GRANT: data}, {POLICY: pol})
    assert snap.grants == []
    assert any(p.message.startswith("grantee: invalid value") for p in snap.problems)


@pytest.mark.parametrize("extra", [{"prefix": "jit_\n"}, {"dsn_env": "JG_DSN\n"}])
def test_policy_names_with_a_trailing_newline_are_rejected(extra: dict[str, Any]) -> None:
    snap = snapshot(policies={POLICY: policy(**extra)})
    assert not snap.policy.valid


@pytest.mark.parametrize("reason", [
    "'; DROP ROLE postgres; --", 'say "hi" | rm -rf / # `id` $(x)', "line one\nline two\r\n",
    "\U0001f4a5 \u00fcn\u00efc\u00f8de \u202eevil", "<script>alert(1)</script> | a | b |",
    "x" * 2000, "%s %n {0} {{ jinja }}",
])
def test_hostile_reason_is_accepted_and_stored_literally(reason: str) -> None:
    snap = snapshot({GRANT: grant_data(reason=reason, ticket=reason[:200])})
    assert snap.problems == []
    assert snap.grants[0].reason == reason
    assert snap.grants[0].ticket == reason[:200]


@pytest.mark.parametrize("reason", [
    "",
    "   ", "\n", "x" * 2001])
def test_empty_or_oversized_reason_is_rejected(reason: str) -> None:
    data = grant_data(reason=reason)
    found = only_problem(snapshot({GRANT: data}))
    assert found.line == line_of(data, "reason")
    assert found.message.startswith("reason: ")


@pytest.mark.parametrize("value", [123, True, ["a"], {"a": 1}, None])
def test_non_string_fields_are_rejected(value: Any) -> None:
    data = grant_data()
    data["grantee"] = value
    found = only_problem(snapshot({GRANT: data}))
    assert found.line == 1
    assert found.message == "grantee: must be a string"


def test_many_problems_in_one_file_each_have_their_own_line() -> None:
    data = grant_data(colour="red", ticket="")
    snap = snapshot({GRANT: data})
    assert sorted((p.line, p.message) for p in snap.problems) == [
        (6, "unknown key 'colour'"), (7, "ticket: must not be empty")]


def test_roles_jitgrant_relies_on_must_lie_outside_the_namespace() -> None:
    from reconciler.validate import load_policy
    from reconciler.load import SourceFile
    text = (b"targets:\n  db1: {engine: postgres, dsn_env: X, reassign_owned_to: jit_owner}\n"
            b"access:\n  ro: {roles: [jit_group, app_ok], max_duration: 8h}\n")
    problems: list = []  # type: ignore[type-arg]
    policy = load_policy([SourceFile("policies/p.yaml", text)], problems)
    messages = [p.message for p in problems]
    assert not policy.valid
    assert any("reassign_owned_to: 'jit_owner' is inside the namespace" in m for m in messages)
    assert any("'jit_group' is inside the namespace 'jit_' of target db1" in m
               for m in messages)
    assert not any("app_ok" in m for m in messages)


# -- superuser-equivalent group roles (issue 11, finding 6) -----------------------------------


@pytest.mark.parametrize("role", ["postgres", "pg_execute_server_program", "pg_write_server_files",
                                  "pg_read_server_files", "pg_signal_backend", "root",
                                  "mysql.session", "mariadb.sys"])
def test_a_known_superuser_equivalent_role_needs_dangerous(role: str) -> None:
    data = policy()
    data["access"]["readonly"]["roles"] = ["app_readonly", role]
    snap = snapshot({GRANT: grant_data()}, policies={POLICY: data})
    found = [p for p in snap.problems if p.path == POLICY]
    assert len(found) == 1 and found[0].severity == "error"
    assert found[0].message.startswith(f"access.readonly.roles: {role!r} ")
    assert found[0].message.endswith("needs `dangerous: true`")
    assert "readonly" not in snap.policy.access and not snap.policy.valid
    assert snap.grants == []  # its grants are not granted


def test_dangerous_true_lets_a_level_name_such_a_role() -> None:
    data = policy()
    data["access"]["readonly"].update(roles=["pg_read_server_files"], dangerous=True)
    snap = snapshot({GRANT: grant_data()}, policies={POLICY: data})
    assert snap.problems == [] and snap.policy.access["readonly"].dangerous
    assert not snap.policy.access["readwrite"].dangerous


def test_dangerous_must_be_a_boolean() -> None:
    data = policy()
    data["access"]["readonly"]["dangerous"] = "yes"
    found = only_problem(snapshot(policies={POLICY: data}))
    assert found.message == "access.readonly.dangerous: must be true or false"
