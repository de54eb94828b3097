"""read_snapshot reads the grant files in a background `git cat-file` while the policy loads:
the same files as reading them afterwards, and no git process left when reading stops early."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from reconciler import gitrepo
from reconciler.model import Policy
from reconciler.snapshot import read_snapshot
from tests.helpers import AccessRepo, grant, policy

NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW is taken as each test starts, not when the module was imported: the commits are
    made with the real clock, and in a long run they would lie more than the allowed clock
    skew ahead of an import-time NOW (refused as dated in the future)."""
    monkeypatch.setattr(sys.modules[__name__], "NOW", datetime.now(timezone.utc))


def _repo(tmp_path: Path) -> AccessRepo:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", policy())
    for name in ("alice", "bob"):
        repo.write(f"grants/db1/{name}.yaml", grant(name))
    repo.write("grants/db1/broken.yaml", "grantee: [unclosed\n")
    repo.commit("grants")
    return repo


def _git_children() -> list[int]:
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if name == "git" and rest.split()[1] == me:
            found.append(int(pid))
    return found


def test_the_same_files_as_reading_them_at_once(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    handle = gitrepo.open_repo(repo.root)
    commit = gitrepo.resolve(handle, "HEAD")
    entries = gitrepo.list_tree(handle, commit, ["grants"])
    with gitrepo.LaterFiles(handle, commit, entries) as later:
        assert later.files() == gitrepo.read_tree(handle, commit, ["grants"])
    snapshot = read_snapshot(repo.root, "HEAD", NOW)
    assert sorted(g.grantee for g in snapshot.grants) == ["alice", "bob"]
    assert [p.path for p in snapshot.errors] == ["grants/db1/broken.yaml"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_no_git_process_is_left_when_reading_stops_early(tmp_path: Path) -> None:
    repo = _repo(tmp_path)

    def fail(policy: Policy) -> None:
        raise RuntimeError("stopped while the grant files were being read")

    before = set(_git_children())  # (other tests' repository objects keep some)
    with pytest.raises(RuntimeError):
        read_snapshot(repo.root, "HEAD", NOW, on_policy=fail)
    assert set(_git_children()) <= before
