"""fast_init must build exactly what the dataclass's own __init__ builds, and stay frozen."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from datetime import datetime, timezone

import pytest

from reconciler.engines.base import Statement
from reconciler.fastinit import fast_init
from reconciler.gitrepo import _Commit
from reconciler.load import SourceFile
from reconciler.model import ActualRole, DesiredLogin, Grant, KnownLogin, Person, Provenance
from reconciler.plan import Action
from reconciler.validate import RawGrant

WHEN = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
SAMPLES = [
    (SourceFile, ("grants/db/a.yaml", b"x: y\n"), {"blob": "abc"}),
    (RawGrant, ("grants/db/a.yaml", "alice", "db", "readonly", None), {}),
    (Grant, ("grants/db/a.yaml", "alice", "db", "readonly", WHEN, "INC-1"), {"ticket": "T"}),
    (Person, ("alice",), {"groups": ("sre",)}),
    (Provenance, ("abc", "A", "a@example.com", WHEN, WHEN), {"pull_request": 7}),
    (DesiredLogin, ("jit_alice_readonly", "alice", "readonly", WHEN, ("ro",), 3, None, ()), {}),
    (KnownLogin, ("alice", "readonly", "expired", WHEN, ("grants/db/a.yaml",)), {}),
    (ActualRole, ("jit_alice_readonly",), {"comment": "c", "members": frozenset({"x"})}),
    (Action, ("db", "create", "jit_alice_readonly", "granted"), {"grantee": "alice"}),
    (Statement, (0, "main", "SELECT 1", "SELECT 1"), {}),
    (_Commit, ("abc", ("def",), "A", "a@example.com", WHEN, WHEN, "subject"), {}),
]


def original(cls: type) -> type:
    """The same class as the dataclass decorator alone makes it."""
    return dataclasses.dataclass(frozen=True)(type(cls.__name__, (), {
        "__annotations__": dict(cls.__annotations__),
        **{f.name: f for f in dataclasses.fields(cls)}}))


@pytest.mark.parametrize(("cls", "args", "kwargs"), SAMPLES,
                         ids=lambda v: getattr(v, "__name__", ""))
def test_builds_what_the_dataclass_builds(cls: type, args: tuple, kwargs: dict) -> None:
    made = cls(*args, **kwargs)
    expected = original(cls)(*args, **kwargs)
    assert vars(made) == vars(expected)
    assert inspect.signature(cls) == inspect.signature(original(cls))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(dataclasses.fields(cls)[0].name, None)
    assert pickle.loads(pickle.dumps(made)) == made
    assert dataclasses.replace(made) == made


def test_default_factories_make_a_new_value_each_time() -> None:
    @fast_init
    @dataclasses.dataclass(frozen=True)
    class Box:
        items: list[int] = dataclasses.field(default_factory=list)

    assert Box().items == [] and Box().items is not Box().items
    assert Box([1]).items == [1]


def test_refuses_what_it_cannot_copy() -> None:
    with pytest.raises(TypeError):
        @fast_init
        @dataclasses.dataclass(frozen=True)
        class Checked:
            value: int

            def __post_init__(self) -> None:
                pass
