"""Whatever the files hold, the result is clean problems (`path:line: message`) or a correct
plan: never an exception, never a hang, never a statement outside the namespace.

Files go through the real loader and checks (`build_snapshot`, what `read_snapshot` calls once
it has the bytes); a smaller set goes through a real git repository, `read_snapshot` on a commit
and on the working tree, and the `validate` and `plan --offline` commands.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from reconciler.apply import reconcile
from reconciler.cli import main
from reconciler.load import SourceFile, YamlProblem, parse_yaml
from reconciler.snapshot import read_snapshot
from reconciler.validate import Context, Snapshot, build_snapshot
from tests.helpers import AccessRepo, grant, policy
from tests.hostile.conftest import examples
from tests.hostile.strategies import (NATIVE, SCRAM, WILDNESS, dump, grants, names, policies,
                                      raw_bytes, structures, styles)
from tests.hostile.world import check_problem, plan_everything

NOW = datetime.now(timezone.utc).replace(microsecond=0)
MAIN = "policies/main.yaml"
SIBLING = "grants/db1/sibling.yaml"
HOSTILE_GRANT = "grants/db1/hostile.yaml"
HOSTILE_POLICY = "policies/zz-hostile.yaml"  # after main.yaml: main's names win
PROBLEM_LINE = re.compile(r"^[^\n]+?:\d+: (warning: )?[^\n]+$")
GITHUB_COMMAND = re.compile(r"::(error|warning) file=[^:,\r\n]+,line=\d+::[^\r\n]+")


def snapshot_of(files: dict[str, bytes]) -> Snapshot:
    """build_snapshot over `files` in the order read_folder gives them, then the checks every
    result must pass: clean problems, and a plan that stays in the namespace."""
    ordered = sorted(files.items())
    policy_files = [SourceFile(p, d) for p, d in ordered if p.startswith("policies/")]
    grant_files = [SourceFile(p, d) for p, d in ordered if p.startswith("grants/")]
    snapshot = build_snapshot(policy_files, grant_files, Context(now=NOW))
    for problem in snapshot.problems:
        check_problem(problem, files)
        assert problem.path in files, problem
    plan_everything(snapshot, NOW, seed=len(files))
    return snapshot


def base_files() -> dict[str, bytes]:
    return {MAIN: yaml.safe_dump(policy()).encode(),
            SIBLING: yaml.safe_dump(grant(expires=NOW + timedelta(hours=2))).encode()}


def sibling_still_planned(snapshot: Snapshot) -> None:
    """Fail closed per file: the valid grant beside a hostile file is still planned."""
    assert not [p for p in snapshot.errors if p.path == SIBLING], snapshot.problems
    assert SIBLING in {g.path for g in snapshot.grants}
    if not snapshot.policy.valid:
        return  # invalid policies grant nothing at all (and that is checked by the plan)
    run = reconcile(snapshot, NOW, offline=True)
    creates = [a for t in run.targets for a in (t.plan.actions if t.plan else ())
               if a.kind == "create" and SIBLING in a.grant_files]
    assert creates, [t.plan for t in run.targets]


def as_grant_and_policy(data: bytes) -> None:
    for path in (HOSTILE_GRANT, HOSTILE_POLICY):
        files = {**base_files(), path: data}
        snapshot = snapshot_of(files)
        if path == HOSTILE_GRANT:
            assert all(p.path == path for p in snapshot.problems), snapshot.problems
        sibling_still_planned(snapshot)


# -- arbitrary bytes and text ----------------------------------------------------------------------


@examples(600)
@given(raw_bytes)
def test_any_bytes_give_a_document_or_one_problem(data: bytes) -> None:
    try:
        parse_yaml(SourceFile("x.yaml", data))
    except YamlProblem as exc:
        assert exc.line >= 1 and exc.message and "\n" not in exc.message


@examples(250)
@given(raw_bytes)
def test_any_bytes_as_a_grant_or_a_policy_file(data: bytes) -> None:
    as_grant_and_policy(data)


@examples(200)
@given(structures, styles)
def test_any_structure_dumped_to_yaml(structure: Any, style: dict[str, Any]) -> None:
    as_grant_and_policy(dump(structure, style))


@examples(150)
@given(st.dictionaries(st.sampled_from(["grantee", "target", "access", "expires", "starts",
                                        "reason", "ticket", "password_verifier", "x"]),
                       structures, max_size=8), styles)
def test_any_values_in_a_grant_shaped_file(data: dict[str, Any], style: dict[str, Any]) -> None:
    as_grant_and_policy(dump(data, style))


# -- valid files with one thing changed ------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid policy or grant with one key replaced, removed, renamed, or added."""
    engine = draw(st.sampled_from(["postgres", "mysql"]))
    which = draw(st.sampled_from(["policy", "grant"]))
    doc: Any = policy(engine=engine) if which == "policy" else grant(
        expires=NOW + timedelta(hours=2), verifier=SCRAM if engine == "postgres" else NATIVE)
    path = draw(st.sampled_from(list(_paths(doc))))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key, op = path[-1], draw(st.sampled_from(["replace", "replace", "delete", "rename", "add"]))
    if op == "replace" or isinstance(parent, list):
        parent[key] = draw(st.one_of(structures, names))
    elif op == "delete":
        del parent[key]
    elif op == "rename":
        parent[draw(names)] = parent.pop(key)
    else:
        parent[draw(names)] = draw(structures)
    return which, doc


@examples(250)
@given(mutated(), styles)
def test_a_valid_file_with_one_field_changed(case: tuple[str, Any], style: dict[str, Any]) -> None:
    which, doc = case
    files = base_files()
    if which == "policy":
        files[MAIN] = dump(doc, style)
        snapshot_of(files)
    else:
        files[HOSTILE_GRANT] = dump(doc, style)
        snapshot = snapshot_of(files)
        assert all(p.path == HOSTILE_GRANT for p in snapshot.problems), snapshot.problems
        sibling_still_planned(snapshot)


# -- hostile names: the plan stays in the namespace ------------------------------------------------


@st.composite
def repositories(draw: st.DrawFn) -> dict[str, bytes]:
    wild = draw(WILDNESS)
    pol = draw(policies(wild))
    style = draw(styles)
    files = {MAIN: dump(pol, style)}
    for _ in range(draw(st.integers(1, 5))):
        path, data = draw(grants(pol, NOW, wild))
        files[path] = dump(data, style)
    return files


@examples(500)
@given(repositories())
def test_hostile_names_never_leave_the_namespace(files: dict[str, bytes]) -> None:
    snapshot_of(files)


# -- through git and the command line --------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[AccessRepo]:
    """One repository for every example of the module (a new one each would cost more than
    the example): each example replaces policies/ and grants/ and commits."""
    root = Path(tempfile.mkdtemp(prefix="jitgrant-hostile-"))
    try:
        yield AccessRepo(root / "repo")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _replace_tree(repo: AccessRepo, files: dict[str, bytes]) -> None:
    for top in ("policies", "grants"):
        shutil.rmtree(repo.root / top, ignore_errors=True)
    for path, data in files.items():
        repo.write(path, data)
    repo.commit("example")


@examples(50)
@given(repositories())
def test_hostile_repositories_through_git_and_the_cli(scratch: AccessRepo,
                                                      files: dict[str, bytes]) -> None:
    _replace_tree(scratch, files)
    # Read at the real time, not the import-time NOW: the commit was just made with the real
    # clock, and in a long run NOW would be more than the allowed skew behind it.
    now = datetime.now(timezone.utc)
    committed = read_snapshot(scratch.root, "HEAD", now)
    working = read_snapshot(scratch.root, None, now)
    # A commit and the same files in a working tree give the same problems.
    assert sorted(map(str, committed.problems)) == sorted(map(str, working.problems))
    for problem in committed.problems:
        check_problem(problem, files)
    plan_everything(committed, now, seed=len(files))
    runner = CliRunner()
    result = runner.invoke(main, ["validate", "--repo", str(scratch.root)])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for line in result.stderr.splitlines():
        assert PROBLEM_LINE.match(line), line
    assert result.exit_code == (1 if committed.errors else 0)
    # GitHub annotations: one workflow command per problem, none forged by a name or value.
    result = runner.invoke(main, ["validate", "--repo", str(scratch.root), "--format", "github"])
    commands = result.stdout.split("\n")[:len(working.problems)]  # as the runner splits
    assert len(commands) == len(working.problems), result.output
    for command in commands:
        assert GITHUB_COMMAND.match(command), command
    # Against the previous example's commit: every file is new or changed, so a grant already
    # expired or of someone inactive is an error now; as JSON.
    result = runner.invoke(main, ["validate", "--repo", str(scratch.root), "--base", "HEAD~1",
                                  "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    if "unknown revision" not in result.stderr:  # the first example has no HEAD~1
        assert {p["path"] for p in json.loads(result.stdout)} <= set(files)
    result = runner.invoke(main, ["plan", "--offline", "--repo", str(scratch.root)])
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
