"""`apply --push` against a moving origin (a bare repository): racing runs both land their audit
records, once each, and nobody else's commit is ever rewritten."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler import audit
from reconciler.apply import Run
from reconciler.errors import UserError
from reconciler.schemas import validator
from tests.audit_runs import Step, approved_grant, create, make_run
from tests.cli.conftest import Namespace, bare_origin, jitgrant, origin_with_a_grant
from tests.helpers import git, policy

BASE = datetime(2026, 11, 17, 9, 0, tzinfo=timezone.utc)


def a_run(n: int, run_id: str | None = None) -> Run:
    g = approved_grant(f"grants/orders-prod/p{n}.yaml", f"p{n}", "orders-prod", "readonly",
                       BASE + timedelta(hours=8), f"INC-{n}", 100 + n, BASE)
    return make_run(BASE + timedelta(seconds=n), [Step(create(g))], [g], run_id=run_id)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return bare_origin(tmp_path, {"policies/main.yaml": policy()}, "policy")


def clone(origin: Path, path: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(path)], check=True)
    return path


def on_origin(origin: Path, *args: str) -> str:
    return git(origin, *args)


def push_unrelated(repo: Path, name: str) -> str:
    """Someone else's merged commit pushed to main; return its sha as it landed."""
    for _ in range(100):
        git(repo, "fetch", "-q", "origin", "main")
        git(repo, "reset", "-q", "--hard", "origin/main")
        (repo / "docs").mkdir(exist_ok=True)
        (repo / f"docs/{name}.md").write_text(f"# {name}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"Merge pull request #{len(name)} from {name}")
        sha = git(repo, "rev-parse", "HEAD")
        if subprocess.run(["git", "-C", str(repo), "push", "-q", "origin", "HEAD:main"],
                          capture_output=True).returncode == 0:
            return sha
    raise AssertionError("could not push an unrelated commit")


def audit_files(origin: Path) -> list[str]:
    return on_origin(origin, "ls-tree", "-r", "--name-only", "main", "--", "audit").split()


def test_two_racing_applies_both_land_their_records(origin: Path, tmp_path: Path) -> None:
    first, second, other = (clone(origin, tmp_path / n) for n in ("ci-1", "ci-2", "dev"))
    seed = on_origin(origin, "rev-parse", "main")
    start = threading.Barrier(3)
    written: dict[str, str] = {}  # audit file -> run id
    unrelated: list[str] = []
    failures: list[BaseException] = []

    def applier(repo: Path, offset: int) -> None:
        start.wait()
        for n in range(offset, offset + 4):
            run = a_run(n, run_id=f"{secrets.token_hex(5)}{n:02d}")
            rel = audit.persist(repo, run, commit=True, push=True)
            assert rel is not None
            written[rel] = run.run_id

    def mover() -> None:
        start.wait()
        for n in range(6):
            unrelated.append(push_unrelated(other, f"merged-{n}"))

    def guarded(func: Callable[..., None], *args: object) -> threading.Thread:
        def body() -> None:
            try:
                func(*args)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)
        return threading.Thread(target=body)

    threads = [guarded(applier, first, 0), guarded(applier, second, 10), guarded(mover)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(written) == 8 and len(unrelated) == 6

    # Every record landed, once: one file each, one commit each, with the content written.
    assert sorted(audit_files(origin)) == sorted(written)
    for rel, run_id in written.items():
        assert len(on_origin(origin, "log", "--format=%H", "main", "--", rel).split()) == 1
        assert json.loads(on_origin(origin, "show", f"main:{rel}"))["run_id"] == run_id
    subjects = on_origin(origin, "log", "--format=%s", "main").splitlines()
    assert sum(s.endswith("[skip ci]") for s in subjects) == 8
    # Nobody else's commit was rewritten: the seed and each unrelated commit as they landed.
    for sha in [seed, *unrelated]:
        assert subprocess.run(["git", "-C", str(origin), "merge-base", "--is-ancestor", sha,
                               "main"]).returncode == 0, sha
    assert on_origin(origin, "rev-list", "--min-parents=2", "main") == ""  # linear
    for repo in (first, second):
        assert git(repo, "status", "--porcelain") == ""
        assert not (repo / ".git/rebase-merge").exists()
    # Both first pushes were built on the same origin: one of them had to be rebased.
    reflogs = [git(repo, "reflog", "--format=%gs") for repo in (first, second)]
    assert any(line.startswith("rebase") for log in reflogs for line in log.splitlines())


def test_a_stale_clone_rebases_only_its_audit_commit(origin: Path, tmp_path: Path) -> None:
    first, second, other = (clone(origin, tmp_path / n) for n in ("ci-1", "ci-2", "dev"))
    assert audit.persist(first, a_run(1), push=True)
    theirs = push_unrelated(other, "merged")
    landed = on_origin(origin, "rev-list", "main").split()
    rel = audit.persist(second, a_run(2), push=True)  # rejected, fetched, rebased, pushed
    assert on_origin(origin, "rev-list", "main").split()[1:] == landed
    assert landed[0] == theirs
    assert git(second, "rev-parse", "HEAD") == on_origin(origin, "rev-parse", "main")
    assert on_origin(origin, "show", "--name-only", "--format=", "main") == rel


def test_unpushed_work_that_is_not_an_audit_commit_is_never_rebased(origin: Path,
                                                                    tmp_path: Path) -> None:
    first, second = clone(origin, tmp_path / "ci-1"), clone(origin, tmp_path / "ci-2")
    (second / "grants/db1").mkdir(parents=True)
    (second / "grants/db1/mine.yaml").write_text("# someone's unpushed work\n")
    git(second, "add", "-A")
    git(second, "commit", "-q", "-m", "work in progress")
    audit.persist(first, a_run(1), push=True)
    before = on_origin(origin, "rev-parse", "main")
    with pytest.raises(UserError, match=r"not audit commits \(grants/db1/mine.yaml\)"):
        audit.persist(second, a_run(2), push=True)
    local = git(second, "log", "--format=%s", "-2").splitlines()
    assert local[1] == "work in progress" and local[0].endswith("[skip ci]")
    assert on_origin(origin, "rev-parse", "main") == before
    assert git(second, "status", "--porcelain") == ""


def test_a_conflicting_rebase_is_aborted(origin: Path, tmp_path: Path) -> None:
    """Distinct runs never write the same file; if they did, nothing would be overwritten."""
    first, second = clone(origin, tmp_path / "ci-1"), clone(origin, tmp_path / "ci-2")
    audit.persist(first, a_run(1, run_id="samerun"), push=True)
    before = on_origin(origin, "rev-parse", "main")
    mine = a_run(1, run_id="samerun")
    mine.targets[0].results[0].sessions_ended = 5  # other content, same path
    with pytest.raises(UserError, match="could not rebase the audit commit onto"):
        audit.persist(second, mine, push=True)
    assert on_origin(origin, "rev-parse", "main") == before
    assert not (second / ".git/rebase-merge").exists()
    assert not (second / ".git/rebase-apply").exists()
    assert git(second, "status", "--porcelain") == ""
    assert git(second, "log", "-1", "--format=%s").endswith("[skip ci]")


def test_uncommitted_changes_are_left_alone(origin: Path, tmp_path: Path) -> None:
    first, second = clone(origin, tmp_path / "ci-1"), clone(origin, tmp_path / "ci-2")
    audit.persist(first, a_run(1), push=True)
    (second / "policies/main.yaml").write_text("# an operator's edit in progress\n")
    with pytest.raises(UserError, match="could not rebase.*unstaged changes"):
        audit.persist(second, a_run(2), push=True)
    assert (second / "policies/main.yaml").read_text() == "# an operator's edit in progress\n"
    assert git(second, "log", "-1", "--format=%s").endswith("[skip ci]")


def test_a_push_refused_for_another_reason_fails_at_once_in_one_line(origin: Path,
                                                                    tmp_path: Path) -> None:
    hook = origin / "hooks/pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo = clone(origin, tmp_path / "ci")
    with pytest.raises(UserError) as caught:
        audit.persist(repo, a_run(1), push=True)
    message = str(caught.value)
    assert "\n" not in message and "main is protected" in message
    assert message.startswith("git push failed: ")
    assert "hint:" not in message


def test_a_detached_head_is_refused(origin: Path, tmp_path: Path) -> None:
    repo = clone(origin, tmp_path / "ci")
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(UserError, match="detached HEAD"):
        audit.persist(repo, a_run(1), push=True)


def test_apply_push_on_a_real_server_while_main_moves(tmp_path: Path,
                                                      namespace: Namespace) -> None:
    """The real command: the grant is merged, main moves on before the push, and the audit
    record still lands on top of it; both records (create, revoke) match the schema."""
    bare = origin_with_a_grant(tmp_path, namespace)
    ci = clone(bare, tmp_path / "ci")
    dev = clone(bare, tmp_path / "dev")
    records = []
    for step in ("create", "revoke"):
        theirs = push_unrelated(dev, f"during-{step}")
        result = jitgrant("apply", "--repo", str(ci), "--push", env=namespace.env)
        assert result.exit_code == 0, result.output
        rel = result.stdout.rsplit("audit record: ", 1)[1].split()[0]
        assert result.stdout.rstrip().endswith(f"audit record: {rel} (committed and pushed)")
        assert on_origin(bare, "rev-parse", "main~1") == theirs
        record = json.loads(on_origin(bare, "show", f"main:{rel}"))
        assert [a["action"] for a in record["actions"]] == [step]
        records.append(record)
        if step == "create":  # alice is done: her grant file is removed, CI checks it out
            git(dev, "fetch", "-q", "origin", "main")
            git(dev, "reset", "-q", "--hard", "origin/main")
            git(dev, "rm", "-q", "grants/db1/alice.yaml")
            git(dev, "commit", "-q", "-m", "Merge pull request #8 from alice/done")
            git(dev, "push", "-q", "origin", "HEAD:main")
            git(ci, "pull", "-q", "--ff-only", "origin", "main")
    assert records[0]["actions"][0]["grants"][0]["pull_request"] == 7
    assert records[1]["actions"][0]["cause"] == "removed"
    for record in records:
        assert list(validator("audit").iter_errors(record)) == []
