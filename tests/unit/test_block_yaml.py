"""The block-mapping fast path must give exactly what the full YAML loader gives, or step
aside: generated documents of nested mappings, lists, comments and tricky values."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.load import parse_block
from tests.helpers import agrees_with_the_full_loader

KEYS = st.sampled_from(["people", "alice", "email", "groups", "on", "yes", "null", "1",
                        "a.b", "a-b", "x_1", "<<", "-k", "k k", "?", "email", "alice"])
SAFE = ["alice", "db1", "INC-1", " stuck", "a@example.com", "o'brien", 'say "hi"', "a:b",
        "(x)", "1", "8h", "2026-11-21T18:00:00Z", "a,b", "!x", "x!", "&y", "*z", "%", "?q"]
TRICKY = [" ", ":", ": ", "#", " #", " # c", "'", '"', "-", "- ", "*", "&", "!", "|", ">",
          "?", ",", "[", "]", "{", "}", "\t", "\r", "0x1", "1.5", "true", "no", "~", "null",
          "2026-11-21", "é", "\u00a0", "\ufeff", "\x07", "123", "1_000", "1:30", ".inf", "@"]
VALUES = st.lists(st.sampled_from(SAFE * 6 + TRICKY), min_size=1, max_size=3).map("".join)
WORDS = st.sampled_from(["sre", "backend", "a.b", "x@y", "1", "yes", "null", "", " ", "a b",
                         "'q'", "[", "-"])
FLOW = st.lists(WORDS, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
INDENT = st.sampled_from(["", "", "  ", "  ", "    ", "    ", " ", "      "])
LINES = st.one_of(
    st.tuples(INDENT, KEYS, VALUES).map(lambda t: f"{t[0]}{t[1]}: {t[2]}"),
    st.tuples(INDENT, KEYS, FLOW).map(lambda t: f"{t[0]}{t[1]}: {t[2]}"),
    st.tuples(INDENT, KEYS).map(lambda t: f"{t[0]}{t[1]}:"),
    st.tuples(INDENT, KEYS).map(lambda t: f"{t[0]}{t[1]}:"),
    st.tuples(INDENT, VALUES).map(lambda t: f"{t[0]}- {t[1]}"),
    st.tuples(INDENT, st.sampled_from(SAFE + TRICKY)).map(lambda t: f"{t[0]}#{t[1]}"),
    st.just(""), st.just("  "), st.just("---"), st.just("..."), st.just("  continued"))

# Documents of consistent shape, so that most of them take the fast path: a mapping of keys to
# values, flow lists, block lists or deeper mappings, each level indented by 1 to 4 more.
# Mostly values the fast path takes, some it must refuse or type the way YAML does.
PLAIN = st.one_of(st.sampled_from(["alice", "a@example.com", "o'brien", 'say "hi" twice',
                                   "a:b", "(x) & y", "8h", "x!", "a,b", "1", "yes", "off",
                                   "2026-11-21T18:00:00Z", "1:30", "0o7", "null", "1e3"]),
                  VALUES)
LEAVES = st.one_of(PLAIN.map(lambda v: ("value", v)), FLOW.map(lambda f: ("flow", f)),
                   st.lists(PLAIN, min_size=1, max_size=3).map(lambda i: ("items", i)))
NAMES = st.one_of(KEYS, st.text("abcxyz019_.-", min_size=1, max_size=6))
TREES = st.recursive(
    st.lists(st.tuples(NAMES, LEAVES), min_size=1, max_size=4, unique_by=lambda kv: kv[0]),
    lambda deeper: st.lists(st.tuples(NAMES, st.one_of(LEAVES, deeper.map(
        lambda t: ("map", t)))), min_size=1, max_size=4, unique_by=lambda kv: kv[0]),
    max_leaves=12)
COMMENTS = st.sampled_from(["", "", "", " # note", "  #x", " #"])


def render(tree: list[tuple[str, tuple[str, object]]], indent: str, step: str,
           comment: str) -> str:
    out = []
    for key, (kind, value) in tree:
        if kind == "value":
            out.append(f"{indent}{key}: {value}{comment}")
        elif kind == "flow":
            out.append(f"{indent}{key}: {value}")
        elif kind == "items":
            out.append(f"{indent}{key}:{comment}")
            out += [f"{indent}{step}- {item}" for item in value]  # type: ignore[attr-defined]
        else:
            out.append(f"{indent}{key}:")
            out.append(render(value, indent + step, step, comment))  # type: ignore[arg-type]
    return "\n".join(out)


DOCS = st.builds(render, TREES, st.just(""), st.sampled_from([" ", "  ", "   ", "    "]),
                 COMMENTS)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.lists(LINES, max_size=10).map("\n".join), DOCS))
@example("people:\n  alice:\n    email: a@example.com\n    groups: [sre, backend]\n")
@example("people:\n  alice:\n    groups:\n      - sre\n      - backend\n  bob:\n    active: no\n")
@example("a:\n  b: c # note\n  d: [x, y]  # more\n# end\n")
@example("a:\nb: c\n")
@example("a:\n- b\n")
@example("a:\n  b: c\n   d: e\n")
@example("a:\n  b: c\n d: e\n")
@example("a: b\n  c\n")
@example("a: [1, yes, null, 2026-11-21]\n")
@example("a: [ x ,y ]\n")
@example("".join(" " * i + f"k{i}:\n" for i in range(31)) + " " * 31 + "z: [x]\n")  # too deep
@example("a:\n  " + "k" * 1025 + ": v\n")  # over libyaml's 1,024 characters for a key
@example("a: 0b_\nb: 'x\n")  # the later syntax error is the one to report
@example("a:\n  b: 0b_\n  c: *x\n")
def test_block_path_agrees_with_the_full_loader(text: str) -> None:
    agrees_with_the_full_loader(parse_block("f.yaml", text), text)


def test_a_people_file_takes_the_block_path() -> None:
    text = ("# who may hold grants\npeople:\n  alice:\n    email: alice@example.com\n"
            "    groups: [sre, backend]  # on call\n  bob:\n    active: false\n"
            "    groups:\n      - backend\n")
    block = parse_block("p.yaml", text)
    assert block is not None
    assert block.data == {"people": {"alice": {"email": "alice@example.com",
                                               "groups": ["sre", "backend"]},
                                     "bob": {"active": False, "groups": ["backend"]}}}
    assert block.lines[("people", "bob", "groups", 0)] == 9


def test_what_it_does_not_know_goes_to_the_full_loader() -> None:
    for text in ("a: 'quoted'\n", "a: {b: c}\n", "a: |\n  text\n", "a: &x b\nc: *x\n",
                 "a:\n", "- a\n", "a: b\r\n", "a:\tb\n", "a: [b, 'c']\n", ""):
        assert parse_block("f.yaml", text) is None, text
