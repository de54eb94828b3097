"""The forked half of snapshot reading gives exactly what one process gives."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from reconciler import parallel, validate
from reconciler.load import SourceFile
from reconciler.validate import Context, build_snapshot
from tests.unit.test_validate import NOW, POLICY, dump, grant_data, policy, stamp

needs_fork = pytest.mark.skipif(not parallel.enabled(), reason="needs Linux and two cores")


def _files() -> tuple[list[SourceFile], list[SourceFile]]:
    grants = []
    for i in range(40):
        data = grant_data(grantee=["alice", "bob", "carol", "nobody"][i % 4],
                          expires=stamp(NOW + timedelta(hours=1 + i % 12)))
        grants.append(SourceFile(f"grants/db1/g{i:02d}.yaml", dump(data)))
    grants.append(SourceFile("grants/db1/broken.yaml", b"grantee: [unclosed\n"))
    return [SourceFile(POLICY, dump(policy()))], grants


@needs_fork
def test_the_forked_half_gives_the_same_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    policies, grants = _files()
    ctx = Context(now=NOW, provenance={}, changed=None)
    monkeypatch.setattr(validate, "PARALLEL_FROM", 10**9)
    alone = build_snapshot(policies, grants, ctx, "0" * 40)
    monkeypatch.setattr(validate, "PARALLEL_FROM", 2)
    forked = build_snapshot(policies, grants, ctx, "0" * 40)
    assert forked == alone
    assert alone.problems and alone.invalid_grants and alone.inactive and alone.grants


@needs_fork
def test_an_exception_in_the_child_is_raised_here() -> None:
    def boom() -> int:
        raise ValueError("from the child")

    with pytest.raises(ValueError, match="from the child"):
        parallel.both(boom, lambda: 1)


@needs_fork
def test_a_child_that_dies_is_replaced_by_running_its_half_here() -> None:
    parent = os.getpid()

    def dies_in_child() -> str:
        if os.getpid() != parent:
            os._exit(9)
        return "ran here"

    assert parallel.both(dies_in_child, lambda: 2) == ("ran here", 2)


def test_switched_off_runs_both_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITGRANT_PARALLEL", "0")
    parent = os.getpid()
    assert parallel.both(os.getpid, os.getpid) == (parent, parent)
