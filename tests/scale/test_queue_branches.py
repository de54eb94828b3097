"""`jitgrant queue` over 1,000 request branches: git is asked a fixed number of times whatever
the number of branches (one for-each-ref, one log, batched reads), counted with git's own
trace (GIT_TRACE2_EVENT), not timed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import jitgrant
from tests.cli.test_queue import Remote, queue_policy
from tests.helpers import git, grant, utc

BRANCHES = 1000


def fast_import(repo: Path, main: str, count: int) -> None:
    """`count` remote-tracking request branches, one commit each, in one git fast-import."""
    stream = []
    for i in range(count):
        body = yaml.safe_dump(grant("alice", expires=utc(hours=6))).encode()
        message = f"request {i}".encode()
        stream.append(b"commit refs/remotes/origin/access/u%d/db1-readonly\n" % i
                      + b"committer T <t@example.com> %d +0000\n" % (1_800_000_000 + i)
                      + b"data %d\n%s\n" % (len(message), message)
                      + f"from {main}\n".encode()
                      + b"M 100644 inline grants/db1/u%d.yaml\n" % i
                      + b"data %d\n%s\n" % (len(body), body))
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"],
                   input=b"".join(stream), check=True)


def test_a_thousand_branches_cost_a_fixed_number_of_git_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = Remote(tmp_path, queue_policy())
    fast_import(remote.checkout, git(remote.checkout, "rev-parse", "origin/main"), BRANCHES)
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    result = jitgrant("queue", "--repo", str(remote.checkout), "--no-fetch", "--no-forge",
                      "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["items"]
    assert len(found) == BRANCHES
    assert {i["grant_files"][0] for i in found} == {f"grants/db1/u{i}.yaml"
                                                    for i in range(BRANCHES)}
    starts = [line for line in trace.read_text().splitlines() if '"event":"start"' in line]
    assert len(starts) < 40, len(starts)  # one `git log` per branch would be over 1,000
