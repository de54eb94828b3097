"""Bugs the hostile tests found, each pinned by the smallest input that showed it."""

from __future__ import annotations

import codecs
import subprocess
import sys

import pytest

from reconciler.load import MAX_DEPTH, SourceFile, YamlProblem, parse_yaml

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
]


@pytest.mark.parametrize("data", DEEP, ids=["flow", "unclosed", "flow-maps", "dashes", "keys",
                                            "late"])
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


def test_a_large_flat_document_is_not_cut_by_the_depth_walk() -> None:
    data = b"people:\n" + b"".join(b"  p%d: {groups: [a, b]}\n" % i for i in range(2000))
    doc = parse_yaml(SourceFile("policies/people.yaml", data))
    assert len(doc.data["people"]) == 2000


def test_an_error_before_the_depth_limit_is_reported_as_before() -> None:
    found = problem(b"a: [b, c\n" + b"x: " + b"[" * 100)
    assert found.message.startswith("invalid YAML")


# -- messages ---------------------------------------------------------------------------------


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
