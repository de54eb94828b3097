"""The flat-file fast path must give exactly what the full YAML loader gives, or step aside."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.load import parse_flat
from tests.helpers import agrees_with_the_full_loader, grant

KEYS = st.sampled_from(["grantee", "target", "reason", "on", "yes", "null", "a_b", "x1",
                        "expires", "grantee", "reason", "<<", "-k", "k k"])
SAFE = ["alice", "db1", "INC-1", " stuck", " orders", "2026-11-21T18:00:00Z", "a:b", "(x)",
        "SCRAM-SHA-256$4096:c2E=$AA=:BB=", "1", "-y", "*z", "/p", "+q", "=", "."]
TRICKY = [" ", ":", ": ", "#", " #", "'", '"', "-", "*", "&", "!", "%", "@", "`", "|", ">",
          "?", ",", "[", "]", "{", "}", "\t", "\r", "0x1", "1.5", "true", "no", "~", "null",
          "2026-11-21", "é", "\u00a0", "\ufeff", "\x07", "123", "1_000", "1:30", ".inf"]
PIECES = st.sampled_from(SAFE * 6 + TRICKY)
VALUES = st.lists(PIECES, min_size=1, max_size=4).map("".join)
LINES = st.one_of(
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}:{kv[1]}"),
    st.sampled_from(SAFE + TRICKY).map(lambda v: "#" + v), st.just("  continued"),
    st.just(""), st.just("---"), st.just("..."))


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINES, max_size=6).map("\n".join))
@example("reason: it is: fine\n")
@example("reason: ends with colon:\n")
@example("reason: a\n  continued\n")
@example("a: b\na: c\n")
@example("# comment \x07\nreason: x\n")
@example("k" * 1025 + ": v\n")  # over libyaml's 1,024 characters for a key
def test_fast_path_agrees_with_the_full_loader(text: str) -> None:
    agrees_with_the_full_loader(parse_flat("f.yaml", text), text)


def test_a_typical_grant_takes_the_fast_path() -> None:
    text = "".join(f"{k}: {v}\n" for k, v in grant(reason="INC-7 stuck orders").items())
    flat = parse_flat("g.yaml", "# a comment\n" + text)
    assert flat is not None and flat.data["reason"] == "INC-7 stuck orders"
    assert flat.lines[("grantee",)] == 2
