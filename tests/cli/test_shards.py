"""Shards: several `jitgrant apply --push` processes at once (a GitHub Actions matrix, several
CronJobs), each in its own clone of one bare origin, each on its own targets, all pushing their
audit records to main. None is lost, none waits on a pending branch, nobody's commit is
rewritten."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler import audit, gitrepo
from reconciler.errors import UserError
from tests.cli.conftest import JITGRANT_BIN, PG_DSN, Namespace, bare_origin
from tests.cli.test_push_race import a_run
from tests.helpers import IDENTITY, AccessRepo, git, grant, policy

SHARDS = 8


def shard_policy(namespace: Namespace) -> dict[str, Any]:
    """SHARDS targets on the machine's PostgreSQL, one role prefix each (under the namespace's,
    so its cleanup drops them): each target has a lock of its own, as disjoint shards have."""
    data = namespace.policy()
    template = data["targets"].pop("db1")
    data["targets"] = {f"s{n}": {**template, "role_prefix": f"{namespace.prefix}{n}_"}
                       for n in range(SHARDS)}
    return data


def sharded_origin(tmp_path: Path, namespace: Namespace) -> Path:
    """A bare origin whose main holds the shards' policy and one grant for alice per target."""
    seed = AccessRepo(tmp_path / "seed")
    seed.write("policies/main.yaml", shard_policy(namespace))
    for n in range(SHARDS):
        seed.write(f"grants/s{n}/alice.yaml", grant(target=f"s{n}"))
    seed.commit("Merge pull request #9 from alice/shards")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(seed.root, "push", "-q", str(bare), "main")
    return bare


def start_shard(clone: Path, target: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([JITGRANT_BIN, "apply", "--repo", str(clone), "--push",
                             "--target", target, "--log-format", "json"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_eight_concurrent_shards_lose_no_audit_record(tmp_path: Path,
                                                      namespace: Namespace) -> None:
    bare = sharded_origin(tmp_path, namespace)
    seed = git(bare, "rev-parse", "main")
    clones = []
    for n in range(SHARDS):
        clone = tmp_path / f"shard-{n}"
        subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
        clones.append(clone)
    env = {**os.environ, **IDENTITY, **namespace.env}
    # Every clone is made before any shard starts: all eight audit commits are built on the
    # same main, so every shard but the first to push must fetch, rebase and push again.
    procs = [start_shard(clone, f"s{n}", env) for n, clone in enumerate(clones)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for n, (proc, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"shard {n}: {out}{err}"
        assert out.rstrip().endswith("(committed and pushed)"), out

    files = git(bare, "ls-tree", "-r", "--name-only", "main", "--", "audit").split()
    records = [json.loads(git(bare, "show", f"main:{rel}")) for rel in files]
    assert len(records) == SHARDS
    assert sorted(t["target"] for r in records for t in r["targets"]) == \
        sorted(f"s{n}" for n in range(SHARDS))
    assert all(len(r["targets"]) == 1 and [a["action"] for a in r["actions"]] == ["create"]
               for r in records)
    # Each shard's own record, as it reported it: one file and one commit each; its log's
    # run id is the record's.
    for n, (out, err) in enumerate(outputs):
        rel = out.rsplit("audit record: ", 1)[1].split()[0]
        record = json.loads(git(bare, "show", f"main:{rel}"))
        assert [t["target"] for t in record["targets"]] == [f"s{n}"]
        assert len(git(bare, "log", "--format=%H", "main", "--", rel).split()) == 1
        end = json.loads(err.splitlines()[-1])
        assert (end["event"], end["status"], end["run_id"], end["audit_record"]) == \
            ("run_end", "ok", record["run_id"], rel)
    assert len({r["run_id"] for r in records}) == SHARDS
    # Nothing waits on a pending branch; the history is linear, on top of the seed.
    assert git(bare, "for-each-ref", "refs/heads/jitgrant/") == ""
    assert git(bare, "rev-list", "--min-parents=2", "main") == ""
    assert git(bare, "rev-list", "--count", f"{seed}..main") == str(SHARDS)
    # All were built on the same main: at least seven had to rebase theirs.
    rebased = sum(any(line.startswith("rebase") for line in
                      git(clone, "reflog", "--format=%gs").splitlines()) for clone in clones)
    assert rebased >= SHARDS - 1
    for n in range(SHARDS):
        assert namespace.role(f"{namespace.prefix}{n}_alice_readonly") is not None
    assert PG_DSN in namespace.env.values()


# A pre-receive hook that, for the first MOVES pushes to main, moves main itself (a commit of
# its own, as another shard's would be) and declines: the pusher sees origin moved each time.
MOVING_HOOK = """#!/bin/sh
moved=$(cat "$GIT_DIR/moves" 2>/dev/null || echo 0)
while read -r old new ref; do
  [ "$ref" = refs/heads/main ] || continue
  [ "$moved" -lt {moves} ] || exit 0
  echo $((moved + 1)) > "$GIT_DIR/moves"
  # out of the push's quarantine: the commit and the ref update must stay
  unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
  tip=$(git rev-parse refs/heads/main)
  commit=$(echo "another shard $moved" | git commit-tree -p "$tip" "$tip^{{tree}}")
  git update-ref refs/heads/main "$commit" "$tip"
  echo "main moved meanwhile" >&2
  exit 1
done
exit 0
"""


def moving_origin(tmp_path: Path, moves: int) -> Path:
    bare = bare_origin(tmp_path, {"policies/main.yaml": policy()}, "policy")
    hook = bare / "hooks/pre-receive"
    hook.write_text(MOVING_HOOK.format(moves=moves))
    hook.chmod(0o755)
    return bare


def test_a_push_outlasts_more_moves_than_its_minimum_attempts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Origin moves under the push more times than PUSH_ATTEMPTS: within the time budget the
    push keeps fetching, rebasing and pushing until its record lands (the pauses are made
    short here; the number of tries is what is checked)."""
    monkeypatch.setattr(gitrepo, "PUSH_PAUSE_CAP_SECONDS", 0.05)
    moves = gitrepo.PUSH_ATTEMPTS + 4
    bare = moving_origin(tmp_path, moves)
    repo = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", str(bare), str(repo)], check=True)
    rel = audit.persist(repo, a_run(1), push=True)
    assert rel is not None
    assert (bare / "moves").read_text().strip() == str(moves)
    assert git(bare, "show", "--name-only", "--format=", "main") == rel
    assert git(bare, "rev-list", "--count", "main") == str(1 + moves + 1)
    assert git(bare, "for-each-ref", "refs/heads/jitgrant/") == ""


def test_a_push_gives_up_after_its_attempts_and_budget_and_keeps_the_record(
        tmp_path: Path) -> None:
    """When origin never stops moving, the push gives up (here after 3 tries and no time
    budget), saying so in one line; the audit commit stays on the local branch (persist
    then keeps it on a pending branch of origin, see test_push_race)."""
    bare = moving_origin(tmp_path, 10_000)
    repo = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", str(bare), str(repo)], check=True)
    git(repo, "commit", "-q", "--allow-empty", "-m", "audit: nothing [skip ci]")
    with pytest.raises(UserError, match=r"^git push failed 3 times while origin/main kept "
                                        r"moving \(.*main moved meanwhile"):
        gitrepo.push(gitrepo.open_repo(repo), attempts=3, budget=0)
    assert (bare / "moves").read_text().strip() == "3"
    assert git(repo, "log", "-1", "--format=%s") == "audit: nothing [skip ci]"
