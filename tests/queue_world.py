"""The queue's world, shared by its tests (tests/cli/test_queue.py, tests/hostile/test_queue_*):
a real bare remote with request branches, and the `gh` stand-in (tests/ghstandin.py). The
fixtures `remote` and `gh` are registered for the whole suite in tests/conftest.py (a module's
own fixture of the same name, as tests/cli/test_auto_approve.py's `gh`, wins there)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import jitgrant
from tests.ghstandin import GhStandIn
from tests.helpers import AccessRepo, git, policy


def queue_policy(**level: Any) -> dict[str, Any]:
    doc = policy(approvers=["@acme/dba"])
    doc["access"]["readonly"].update({"review_within": "30m", "request_ttl": "24h",
                                      "escalate_to": ["@acme/oncall-leads"], **level})
    return doc


class Remote:
    """A bare origin, a requester's clone that pushes request branches, and the checkout the
    scheduled job runs in."""

    def __init__(self, tmp_path: Path, doc: dict[str, Any]) -> None:
        self.bare = tmp_path / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)],
                       check=True)
        self.requester = AccessRepo(tmp_path / "requester")
        self.requester.write("policies/main.yaml", doc)
        self.requester.commit("policy")
        git(self.requester.root, "remote", "add", "origin", str(self.bare))
        git(self.requester.root, "push", "-q", "origin", "main")
        self.checkout = tmp_path / "checkout"
        subprocess.run(["git", "clone", "-q", str(self.bare), str(self.checkout)], check=True)

    def push_request(self, branch: str, rel: str, doc: dict[str, Any], **env: str) -> None:
        root = self.requester.root
        git(root, "checkout", "-q", "-b", branch, "main")
        self.requester.write(rel, doc)
        self.requester.commit(f"Request {rel}", **env)
        git(root, "push", "-q", "origin", branch)
        git(root, "checkout", "-q", "main")

    def merge_to_main(self, rel: str, doc: dict[str, Any], message: str) -> None:
        self.requester.write(rel, doc)
        self.requester.commit(message)
        git(self.requester.root, "push", "-q", "origin", "main")
        git(self.checkout, "pull", "-q", "--ff-only")


def queue(remote: Remote, *args: str) -> Any:
    result = jitgrant("queue", "--repo", str(remote.checkout), *args)
    return result


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path, queue_policy())


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GhStandIn:
    return GhStandIn(tmp_path, monkeypatch)


STALE = "access/alice/db1-readonly-20261206T010000Z"
FRESH = "access/bob/db1-readonly-20261206T030000Z"
