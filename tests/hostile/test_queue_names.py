"""A request branch's names against `jitgrant queue --act`: a file or branch name that is not
UTF-8 must not stop the queue for every other request (exit 3 before any step), and a file
name the branch author chose must not make the bot mention someone. The forge is
tests/ghstandin.py (a local stand-in for `gh` that records every call); the remote is a real
bare git repository."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.queue_world import FRESH, STALE, Remote, queue
from tests.ghstandin import GhStandIn
from tests.helpers import git, grant, stamp, utc


def push_bytes(remote: Remote, file: bytes, branch: bytes) -> None:
    """A branch (name in bytes) adding a grant file (name in bytes) to main."""
    root = remote.requester.root
    git(root, "checkout", "-q", "-b", "hostile-tmp", "main")
    folder = os.fsencode(root / "grants" / "db1")
    os.makedirs(folder, exist_ok=True)
    with open(folder + b"/" + file, "wb") as out:
        out.write(b"grantee: alice\ntarget: db1\naccess: readonly\n")
    remote.requester.commit("hostile names")
    subprocess.run([b"git", b"-C", os.fsencode(root), b"push", b"-q", b"origin",
                    b"hostile-tmp:refs/heads/" + branch], check=True)
    git(root, "checkout", "-q", "main")


@pytest.mark.parametrize(("file", "branch"), [(b"\xff\xfe.yaml", b"access/mallory/x"),
                                              (b"ok.yaml", b"access/\xff\xfe")])
def test_a_name_that_is_not_utf8_does_not_stop_the_queue(remote: Remote, gh: GhStandIn,
                                                         file: bytes, branch: bytes) -> None:
    push_bytes(remote, file, branch)
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)))
    result = queue(remote, "--act", "--format", "json")
    assert result.exit_code == 0, result.output
    subjects = [i["subject"] for i in json.loads(result.stdout)["items"]]
    assert STALE in subjects
    assert gh.writes()[0] == ["pr", "edit", "11", "--add-reviewer", "acme/oncall-leads"]


@pytest.mark.parametrize("name", ["cc @victim.yaml", "cc `@victim`.yaml", "``@victim.yaml"])
def test_a_file_name_in_a_close_comment_mentions_nobody(remote: Remote, gh: GhStandIn,
                                                       name: str) -> None:
    """The close comment names the file whose start passed: as a code span, where GitHub
    makes no mention (from GitHub's docs; the stand-in cannot tell mentions)."""
    remote.push_request(FRESH, f"grants/db1/{name}",
                        grant("alice", expires=utc(hours=1), starts=utc(minutes=-10)))
    gh.add_pull(11, FRESH, created=stamp(utc(minutes=-5)))
    result = queue(remote, "--act")
    assert result.exit_code == 0, result.output
    [close] = gh.writes()
    assert close[:3] == ["pr", "close", "11"]
    body = close[3].removeprefix("--comment=")
    assert "@victim" in body and "@victim" not in outside_code(body)


def outside_code(text: str) -> str:
    """`text` without its code spans (CommonMark: a run of backticks up to the same run)."""
    return re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", "", text, flags=re.S)


@pytest.mark.parametrize("date", ["99999999999999", "18446744073709551615"])
def test_a_commit_date_python_cannot_hold_does_not_stop_the_queue(remote: Remote, gh: GhStandIn,
                                                                  date: str) -> None:
    """A commit object written by hand, dated past year 9999 (git prints the second one
    as nothing): that branch is aged as now, and the others' steps are still taken."""
    root = remote.requester.root
    git(root, "checkout", "-q", "-b", "hostile-date", "main")
    remote.requester.write("grants/db1/bob.yaml", grant("bob", expires=utc(hours=6)))
    remote.requester.commit("bob asks")
    tree, parent = git(root, "rev-parse", "HEAD^{tree}", "main").split()
    body = (f"tree {tree}\nparent {parent}\nauthor M <m@x> {date} +0000\n"
            f"committer M <m@x> {date} +0000\n\nfrom the future\n")
    sha = subprocess.run(["git", "-C", str(root), "hash-object", "-t", "commit", "-w",
                          "--stdin", "--literally"], input=body, capture_output=True,
                         text=True, check=True).stdout.strip()
    git(root, "push", "-q", "origin", f"{sha}:refs/heads/access/future")
    git(root, "checkout", "-q", "main")
    remote.push_request(STALE, "grants/db1/alice.yaml", grant("alice", expires=utc(hours=6)))
    gh.add_pull(11, STALE, created=stamp(utc(hours=-2)))
    result = queue(remote, "--act", "--format", "json")
    assert result.exit_code == 0, result.output
    by = {i["subject"]: i for i in json.loads(result.stdout)["items"]}
    assert by["access/future"]["age_seconds"] == 0
    assert gh.writes()[0] == ["pr", "edit", "11", "--add-reviewer", "acme/oncall-leads"]
