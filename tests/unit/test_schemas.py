"""The compiled schema check is only a shortcut: it may send a valid document on to jsonschema,
but must never pass one that jsonschema rejects."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.schemas import example_dir, fast_check, validator
from tests.helpers import grant, policy

NAMES = st.sampled_from(["alice", "bob", "db1", "readonly", "Alice", "a_b", "x\n", "", "é",
                         "jit_", "JIT_", "jit", "p" * 70, "@acme/dba", "a@b.c", "PT8H", "8h",
                         "0", "postgres", "mysql", "event", "none"])
SCALARS = st.one_of(NAMES, st.text(max_size=20), st.integers(-5, 20000), st.booleans(),
                    st.none(), st.floats(allow_nan=False, width=16))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=4)), max_leaves=12)
GRANT_KEYS = st.sampled_from(["grantee", "target", "access", "expires", "starts", "reason",
                              "ticket", "password_verifier", "other"])
POLICY_KEYS = st.sampled_from(["targets", "access", "people", "repository", "extra"])


def agrees(name: str, doc: Any) -> None:
    if fast_check(name)(doc):
        assert list(validator(name).iter_errors(doc)) == [], doc


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(GRANT_KEYS, VALUES, max_size=9))
def test_fast_grant_check_never_passes_an_invalid_grant(doc: dict[str, Any]) -> None:
    agrees("grant", doc)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(POLICY_KEYS, st.dictionaries(NAMES, VALUES, max_size=3), max_size=4))
def test_fast_policy_check_never_passes_an_invalid_policy(doc: dict[str, Any]) -> None:
    agrees("policy", doc)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "engine": st.sampled_from(["postgres", "mysql", "oracle", 1]),
    "dsn_env": NAMES, "role_prefix": NAMES, "never_touch": st.lists(NAMES, max_size=2),
    "connect": st.dictionaries(st.sampled_from(["host", "port", "dbname", "x"]), SCALARS),
    "expiry_backstop": NAMES, "approvers": st.lists(NAMES, max_size=2)}))
def test_fast_target_check_never_passes_an_invalid_target(target: dict[str, Any]) -> None:
    agrees("policy", {"targets": {"db1": target}})


def test_valid_files_take_the_fast_path() -> None:
    assert fast_check("grant")(grant())
    assert fast_check("policy")(policy(expiry_backstop="event", engine="mysql"))
    for path in (example_dir() / "policies").glob("*.yaml"):
        assert fast_check("policy")(yaml.safe_load(path.read_text())), path
