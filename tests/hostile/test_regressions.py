"""Bugs the hostile tests found, each pinned by the smallest input that showed it."""

from __future__ import annotations

import codecs
import subprocess
import sys
from datetime import datetime, timezone
from types import MappingProxyType

import pytest
import yaml

from reconciler.engines import ENGINES
from reconciler.load import MAX_DEPTH, SourceFile, YamlProblem, parse_yaml
from reconciler.model import ActualRole, ActualState, Target
from reconciler.plan import desired_state, diff
from reconciler.validate import Context, build_snapshot
from tests.helpers import policy

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)


def problem(data: bytes) -> YamlProblem:
    with pytest.raises(YamlProblem) as info:
        parse_yaml(SourceFile("grants/db1/x.yaml", data))
    return info.value


# -- deep nesting crashed the process (libyaml composes by recursion in C) and took minutes
# (it rescans every open flow level for each token) --------------------------------------------

DEEP = [
    b"[" * 60_000 + b"]" * 60_000,  # 120 KB: a segmentation fault
    b"[" * 500_000,  # 500 KB, unclosed: minutes of parsing
    b"{a: " * 200_000 + b"1" + b"}" * 200_000,
    b"- " * 400_000 + b"x\n",  # block sequences on one line
    b"? " * 400_000 + b"x\n",  # complex keys on one line
    b"grantee: alice\nroles: " + b"[" * 100_000 + b"\n",  # deep after a valid start
    b"".join(b"k%d: [a]\n" % i for i in range(1000)) + b"x: " + b"[" * 60_000 + b"\n",
]


@pytest.mark.parametrize("data", DEEP, ids=["flow", "unclosed", "flow-maps", "dashes", "keys",
                                            "late", "after-flat-pairs"])
def test_deep_nesting_is_one_problem_without_crash_or_delay(data: bytes) -> None:
    # In a child process: a regression is a crash, which would take the test session with it.
    code = ("import sys; from reconciler.load import parse_yaml, SourceFile, YamlProblem\n"
            "try:\n parse_yaml(SourceFile('x.yaml', sys.stdin.buffer.read()))\n"
            "except YamlProblem as e:\n print(e.line, e.message)\n")
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    line, _, message = proc.stdout.decode().strip().partition(" ")
    assert int(line) >= 1
    assert message == f"nested more than {MAX_DEPTH} levels deep"


def test_a_deep_document_reports_the_first_line_too_deep() -> None:
    data = b"a:\n  b: " + b"[" * 2000 + b"x" + b"]" * 2000 + b"\n"
    found = problem(data)
    assert (found.line, found.message) == (2, f"nested more than {MAX_DEPTH} levels deep")


def test_a_deep_document_among_flat_pairs_reports_its_line() -> None:
    data = b"".join(b"k%d: [a, {b: c}]\n" % i for i in range(600)) + b"x: " + b"[" * 2000
    assert problem(data).line == 601


def test_a_large_flat_document_is_not_cut_by_the_depth_walk() -> None:
    data = b"people:\n" + b"".join(b"  p%d: {groups: [a, b]}\n" % i for i in range(2000))
    doc = parse_yaml(SourceFile("policies/people.yaml", data))
    assert len(doc.data["people"]) == 2000


def test_an_error_before_the_depth_limit_is_reported_as_before() -> None:
    found = problem(b"a: [b, c\n" + b"x: " + b"[" * 100)
    assert found.message.startswith("invalid YAML")


# -- messages --------------------------------------------------------------------------------------


def test_a_huge_number_is_reported_without_python_advice() -> None:
    found = problem(b"grantee: alice\nreason: " + b"9" * 5000 + b"\n")
    assert (found.line, found.message) == (2, "invalid value: a number of 5000 characters is "
                                              "too long")


@pytest.mark.parametrize("codec", ["utf-16", "utf-32", "utf-16-be"])
def test_utf16_and_utf32_files_are_named_as_such(codec: str) -> None:
    data = "grantee: alice\n".encode(codec)
    if codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    found = problem(data)
    assert (found.line, found.message) == (1, "the file is UTF-16 or UTF-32, not UTF-8")


@pytest.mark.parametrize(("data", "line", "code"), [
    (b"grantee: alice\nreason: a\x1fb\n", 2, "001F"),
    (b"\x7f", 1, "007F"),
    ("a: 1\r\nb: 2\u2028c: \ufffe".encode(), 3, "FFFE"),
    (b"a: 1\n# a comment with a \x01\n", 2, "0001"),
])
def test_a_forbidden_character_is_one_line_at_its_own_line(data: bytes, line: int,
                                                           code: str) -> None:
    # It was reported at line 1 with PyYAML's second line ('in "<unicode string>", position
    # 8') inside the message.
    found = problem(data)
    assert (found.line, found.message) == (line, f"invalid YAML: the character U+{code} is "
                                                 "not allowed")


@pytest.mark.parametrize(("data", "line"), [
    (b"[", 1), (b"grantee: [\n", 1), (b"grantee: [\n\n\n", 3), (b"a: 1\r\nb: {\r\n", 2),
    (b"a:\n  - [", 2),
])
def test_an_error_at_the_end_of_the_input_is_on_the_last_line(data: bytes, line: int) -> None:
    # libyaml places it one line further, on a line the file does not have (GitHub drops an
    # annotation there).
    found = problem(data)
    assert found.line == line and found.message.startswith("invalid YAML")


@pytest.mark.parametrize(("data", "message"), [
    (b"grantee: !!bool maybe\n", "'maybe' is not a valid bool"),  # was a KeyError
    (b"grantee: !!bool\n", "'' is not a valid bool"),
    (b"grantee: !!int\n", "'' is not a valid int"),  # was an IndexError
    (b"grantee: !!int +\n", "'+' is not a valid int"),
    (b"grantee: !!float _\n", "'_' is not a valid float"),
    (b"grantee: !!int abc\n", "'abc' is not a valid int"),
])
def test_an_explicit_tag_on_a_value_it_cannot_take_is_a_problem(data: bytes,
                                                                message: str) -> None:
    # KeyError and IndexError escaped: `jitgrant validate` exited 3, "a bug in jitgrant".
    found = problem(data)
    assert (found.line, found.message) == (1, f"invalid value: {message}")


# -- one policy file's broken section took that section of every other file with it ----------------


@pytest.mark.parametrize("section", ["access:\n", "access: [readonly]\n", "people: 3\n",
                                     "targets: ''\n"])
def test_a_broken_section_in_one_policy_file_spares_the_other_files(section: str) -> None:
    files = [SourceFile("policies/main.yaml", yaml.safe_dump(policy()).encode()),
             SourceFile("policies/zz.yaml", section.encode())]
    grant = SourceFile("grants/db1/a.yaml", yaml.safe_dump({
        "grantee": "alice", "target": "db1", "access": "readonly", "reason": "r",
        "expires": "2026-06-01T14:00:00Z"}).encode())
    snapshot = build_snapshot(files, [grant], Context(now=NOW))
    # The broken file is reported, and policies are invalid (so nothing is granted)...
    assert [p.path for p in snapshot.errors] == ["policies/zz.yaml"]
    assert not snapshot.policy.valid
    # ...but the grant was not blamed: `unknown access level 'readonly'` said it was.
    assert [g.path for g in snapshot.grants] == ["grants/db1/a.yaml"]


def test_a_name_defined_again_in_another_file_spares_the_first_definition() -> None:
    files = [SourceFile("policies/main.yaml", yaml.safe_dump(policy()).encode()),
             SourceFile("policies/zz.yaml", b"access:\n  readonly: {}\n")]
    grant = SourceFile("grants/db1/a.yaml", yaml.safe_dump({
        "grantee": "alice", "target": "db1", "access": "readonly", "reason": "r",
        "expires": "2026-06-01T14:00:00Z"}).encode())
    snapshot = build_snapshot(files, [grant], Context(now=NOW))
    assert {p.path for p in snapshot.errors} == {"policies/zz.yaml"}
    assert "readonly" in snapshot.policy.access
    assert [g.path for g in snapshot.grants] == ["grants/db1/a.yaml"]


# -- the plan trusted the engine to report only the namespace --------------------------------------


def test_roles_outside_the_namespace_are_never_revoked_whatever_the_state_says() -> None:
    files = [SourceFile("policies/p.yaml", yaml.safe_dump(policy()).encode())]
    snapshot = build_snapshot(files, [], Context(now=NOW))
    target: Target = snapshot.policy.targets["db1"]
    outside = ["app_service", "JIT_alice_readonly", "jit", "xjit_bob", " jit_bob"]
    roles = {n: ActualRole(n, sessions=1) for n in [*outside, "jit_ghost"]}
    actual = ActualState(roles=MappingProxyType(roles), existing_groups=frozenset(),
                         admin="postgres", admin_is_superuser=True, database="postgres")
    plan = diff(desired_state(snapshot, target, NOW), actual, NOW)
    assert [(a.kind, a.login) for a in plan.actions] == [("revoke", "jit_ghost")]
    statements = ENGINES["postgres"].render(plan, actual)
    assert not any(name in s.sql for s in statements for name in outside[:2])


def test_mysql_accounts_outside_the_namespace_are_never_revoked() -> None:
    files = [SourceFile("policies/p.yaml", yaml.safe_dump(policy(engine="mysql")).encode())]
    snapshot = build_snapshot(files, [], Context(now=NOW))
    target = snapshot.policy.targets["db1"]
    roles = {"root@localhost": ActualRole("root@localhost", user="root", host="localhost"),
             "app": ActualRole("app", user="app"),
             "jit_x@h": ActualRole("jit_x@h", user="jit_x", host="h")}
    actual = ActualState(roles=MappingProxyType(roles), existing_groups=frozenset(),
                         admin="admin@%", admin_is_superuser=False, database="ops",
                         flavor="mariadb")
    plan = diff(desired_state(snapshot, target, NOW), actual, NOW)
    assert [a.login for a in plan.actions] == ["jit_x@h"]
