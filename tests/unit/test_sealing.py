"""sealing.py's decisions, on states built in memory: when a sealed file is trusted, what a run
without a sealer does with sealed logins, and which files the audit commit writes and removes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from click.testing import CliRunner

from reconciler.cli import main
from reconciler.engines.base import ActionResult
from reconciler.model import ActualRole, ActualState, DesiredLogin, DesiredState, Grant, Target
from reconciler.plan import Action, TargetPlan
from reconciler.sealed import SealedFile, sealed_path
from reconciler.sealing import Outcome, hold, tip_changes, trusted
from tests.helpers import AccessRepo, utc
from tests.sealing_world import sealed_grant, sealed_policy

TARGET = Target("db1", "postgres")
VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"


def grant(path: str = "grants/db1/a.yaml", sealed: bool = True, extends: str | None = None
          ) -> Grant:
    return Grant(path, "alice", "db1", "readonly", utc(hours=2), "r",
                 delivery="sealed" if sealed else None, extends=extends)


def login(*grants: Grant) -> DesiredLogin:
    return DesiredLogin("jit_alice_readonly", "alice", "readonly", utc(hours=2), ("g",), None,
                        None, grants)


def sealed_file(grant_path: str = "grants/db1/a.yaml", verifier: str = VERIFIER) -> SealedFile:
    return SealedFile("db1", "jit_alice_readonly", "alice", grant_path, "run", verifier, "x")


def actual(*roles: ActualRole) -> ActualState:
    return ActualState(MappingProxyType({r.name: r for r in roles}), frozenset(), "admin", True,
                       "postgres")


def test_trusted_only_for_this_grant_and_the_server_s_verifier() -> None:
    role = ActualRole("jit_alice_readonly", verifier=VERIFIER)
    want = login(grant())
    assert trusted(sealed_file(), "db1", want, grant(), role)
    assert not trusted(sealed_file(verifier="SCRAM-SHA-256$other"), "db1", want, grant(), role)
    assert not trusted(sealed_file("grants/db1/b.yaml"), "db1", want, grant(), role)
    assert not trusted(sealed_file(), "db1", want, grant(), None)  # no login: new password
    # A reconciler that cannot read verifiers takes the file on its names alone (and then never
    # sets the verifier it carries: tests/integration/test_sealed_least_privilege.py).
    unknown = ActualRole("jit_alice_readonly", verifier=None, verifier_known=False)
    assert trusted(sealed_file(), "db1", want, grant(), unknown)
    assert not trusted(sealed_file("grants/db1/b.yaml"), "db1", want, grant(), unknown)


def test_an_extension_is_trusted_only_while_the_grant_it_extends_is_current() -> None:
    role = ActualRole("jit_alice_readonly", verifier=VERIFIER)
    old, new = grant(), grant("grants/db1/a-extend.yaml", extends="grants/db1/a.yaml")
    assert trusted(sealed_file(), "db1", login(old, new), new, role)
    assert not trusted(sealed_file(), "db1", login(new), new, role)  # the old one has ended


def desired(*logins: DesiredLogin) -> DesiredState:
    return DesiredState(TARGET, MappingProxyType({w.name: w for w in logins}),
                        MappingProxyType({}))


def test_without_a_sealer_nothing_is_made_and_nothing_is_taken() -> None:
    sealed, plain = login(grant()), DesiredLogin("jit_bob_readonly", "bob", "readonly",
                                                 utc(hours=1), (), None, None,
                                                 (grant(sealed=False),))
    assert set(hold(desired(sealed, plain), actual()).logins) == {"jit_bob_readonly"}
    kept = hold(desired(sealed), actual(ActualRole("jit_alice_readonly", verifier=VERIFIER)))
    assert kept.logins["jit_alice_readonly"].verifier == VERIFIER
    unread = ActualRole("jit_alice_readonly", verifier=None, verifier_known=False)
    kept = hold(desired(sealed), actual(unread))  # kept, never revoked for want of a verifier
    assert kept.logins["jit_alice_readonly"].verifier is None


@dataclass
class FakeRun:
    """What tip_changes reads of a TargetRun."""

    target: Target
    plan: TargetPlan | None
    results: list[ActionResult] = field(default_factory=list)
    executed: bool = True
    error: str | None = None
    sealed: dict[str, Outcome] | None = None


def test_a_new_password_is_written_only_when_its_action_succeeded() -> None:
    action = Action("db1", "create", "jit_alice_readonly", "granted")
    plan = TargetPlan(TARGET, (action,))
    outcome = {"jit_alice_readonly": Outcome(sealed_file(), new=True)}
    path = sealed_path("db1", "jit_alice_readonly")
    ok = FakeRun(TARGET, plan, [ActionResult()], sealed=outcome)
    assert list(tip_changes([ok], {})[0]) == [path]
    failed = FakeRun(TARGET, plan, [ActionResult(error="refused")], sealed=outcome)
    assert tip_changes([failed], {}) == ({}, [])


def test_the_file_of_a_login_no_longer_sealed_is_removed() -> None:
    gone = sealed_path("db1", "jit_old_readonly")
    other_target = sealed_path("db2", "jit_old_readonly")
    run = FakeRun(TARGET, TargetPlan(TARGET, ()), sealed={})
    existing: dict[str, Any] = {gone: b"x", other_target: b"y"}
    assert tip_changes([run], existing) == ({}, [gone])
    unreached = FakeRun(TARGET, None, executed=False, error="connection refused")
    assert tip_changes([unreached], existing) == ({}, [])


def test_validate_refuses_a_sealed_grant_with_a_verifier_or_without_keys(tmp_path: Path
                                                                         ) -> None:
    repo = AccessRepo(tmp_path / "repo")
    repo.write("policies/main.yaml", sealed_policy({}))
    with_verifier = sealed_grant(expires=utc(hours=1) + timedelta(minutes=1))
    with_verifier["password_verifier"] = VERIFIER
    repo.write("grants/db1/alice.yaml", with_verifier)
    repo.commit("sealed grants")
    out = CliRunner().invoke(main, ["validate", "--repo", str(repo.root)]).output
    assert "grants/db1/alice.yaml:7: password_verifier: a sealed grant carries none" in out
    assert "delivery: sealed needs people.alice.keys" in out
