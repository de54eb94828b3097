"""Hypothesis strategies for hostile access repositories: arbitrary bytes and YAML-ish text,
arbitrary structures dumped to YAML, valid files with one field changed, and policies whose
names carry quotes, semicolons, unicode, NUL, great length or the namespace's own prefix."""

from __future__ import annotations

import codecs
from datetime import datetime, timedelta
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.helpers import stamp

SCRAM = "SCRAM-SHA-256$4096:c2FsdA==$" + "A" * 43 + "=:" + "B" * 43 + "="
NATIVE = "*" + "A1" * 20
NASTY = ['"', "'", "`", ";", "\\", "\n", "\r", "\t", "\0", "\x1a", "\x85", "\u2028", "\u202e",
         "\ufeff", "é", "ü", "ß", "İ", "K", "日本", "🙂", "$", "%", "--", "/*", " ", "#", ":",
         "- ", "{", "}", "[", "]", "&", "*", "!", "|", ">", "@", "?", ",", "=", "\ud7ff"]
FIXED_NAMES = [
    "alice", "bob", "readonly", "app_readonly", "db1", "a", "0", "a.b", "a-b", "a_b", "Alice",
    "x" * 63, "x" * 64, "x" * 200, "é" * 32, "jit_", "jit_alice_readonly", "jit_admin", "jit",
    "JIT_x", "pg_monitor", "pg_", "postgres", "root", "PUBLIC", "public", "CURRENT_USER",
    "a'b", 'a"b', "a`b", "a;b", "a\\b", "a\nb", "a\0b", " a", "a ", "", "-", ".", "~", "null",
    "true", "1e3", "0x10", "'; DROP ROLE postgres; --", '"; DROP ROLE postgres; --',
    "`; DROP USER root; --", "a\\'b", "\\", "%", "_", "jit_\n", "a\u202eb",
]


def _join(parts: list[str]) -> str:
    return "".join(parts)


names = st.one_of(
    st.sampled_from(FIXED_NAMES),
    st.lists(st.sampled_from(NASTY + ["a", "b", "_", "jit_", "1"]), min_size=1,
             max_size=8).map(_join),
    st.text(max_size=12),
)
# Names valid where the schema wants [a-z0-9...]: most generated files should get past the
# schema so that the plan is exercised too.
plain = st.sampled_from(["alice", "bob", "dave", "readonly", "rw", "db1", "db-2", "a.b", "x" * 40,
                         "0", "jit", "admin", "root", "super", "x" * 63])
PREFIXES = ["jit_", "pg_", "a_", "jit_jit_", "z" * 15 + "_", "app_"]
# Role names take anything but NUL, up to 63 characters: the hostile ones the schema lets in.
ROLEISH = ["app_readonly", 'app"ro', "app'ro", "app`ro", "app;ro", "app\\ro", "ünïcode", "x" * 63,
           "a b", "a\nb", "'; DROP ROLE postgres; --", '"; DROP ROLE postgres; --',
           "`; DROP USER root; --", "PUBLIC", "pg_read_all_data", "CURRENT_USER", "--", " ",
           "\u202e", "日本語", "🙂", "a\\'b", "$1", "%s", "{}", "a\rb", "\\", "'", '"', "`",
           "JIT_upper", "jit", "İ"]
roleish = st.one_of(*[st.sampled_from(ROLEISH)] * 3,
                    st.text(min_size=1, max_size=63).filter(lambda t: "\0" not in t))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


WILDNESS = st.sampled_from([0, 0, 0, 0, 12, 4])  # how often a value the schema refuses comes


@st.composite
def policies(draw: st.DrawFn, wild: int = 0) -> dict[str, Any]:
    """A policy with one or two targets, hostile where the schema leaves room (group roles,
    never_touch, reassign_owned_to: quotes, semicolons, unicode, the namespace's own prefix)
    and, one time in about `wild`, where it does not (names, prefixes, durations: NUL, length,
    case). `wild` 0: never."""

    def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any],
               odds: int = 5) -> st.SearchStrategy[Any]:
        return good if not wild else st.one_of(*[good] * (max(odds, wild) - 1), bad)

    prefix = draw(mostly(st.sampled_from(PREFIXES), names))
    name_of = mostly(plain, names)
    in_namespace = plain.map(lambda n: prefix + n)
    targets: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 2))):
        engine = draw(st.sampled_from(["postgres", "mysql"]))
        target: dict[str, Any] = {"engine": engine, "dsn_env": "JG_DSN",
                                  "environment": "production", "role_prefix": prefix}
        target["never_touch"] = draw(st.lists(st.one_of(
            roleish, in_namespace, plain.map(lambda n: f"{prefix}{n}_readonly"),
            st.just(prefix + "admin")), max_size=3))
        owner = draw(maybe(mostly(roleish, in_namespace, 3)))
        if owner is not None and engine == "postgres":
            target["reassign_owned_to"] = owner
        if engine == "mysql" and draw(st.booleans()):
            target["expiry_backstop"] = "event"
        targets[draw(mostly(st.just("db1"), name_of, 4))] = target
    levels: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 3))):
        roles = draw(st.lists(st.one_of(*[roleish] * 5, in_namespace, mostly(roleish, names)),
                              max_size=3, unique=True))
        level: dict[str, Any] = {"roles": roles, "max_duration": draw(mostly(
            st.sampled_from(["8h", "30m", "2d", "PT8H", "999999w"]),
            st.sampled_from(["0h", "P", "8x", "9999999h", "-1h", "PT", " 8h"])))}
        if draw(st.booleans()):
            level["connection_limit"] = draw(mostly(st.integers(1, 10000),
                                                    st.integers(-2, 10**20)))
        if draw(st.integers(0, 4)) == 0:
            level["allowed_groups"] = draw(st.lists(mostly(st.just("sre"), names), min_size=1,
                                                    max_size=2))
        if any(r.startswith(prefix) for r in roles) and draw(st.booleans()):
            for target in targets.values():  # inside the namespace is allowed when kept away
                target["never_touch"] = [*target["never_touch"], *roles]
        levels[draw(st.one_of(st.just("readonly"), name_of))] = level
    people: dict[str, Any] = {"alice": {"groups": ["sre"]}, "bob": {"groups": ["sre"]},
                              "carol": {"active": False}}
    for _ in range(draw(st.integers(0, 2))):
        people[draw(name_of)] = {"groups": draw(st.lists(mostly(st.just("sre"), names),
                                                         max_size=2)),
                                 "active": draw(mostly(st.just(True), st.just(False), 3))}
    return {"targets": targets, "access": levels, "people": people}


def timestamps(now: datetime) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-30, 600).map(lambda m: stamp(now + timedelta(minutes=m))),
        st.sampled_from(["2026-11-21T18:00:00", "2026-11-21", "9999-12-31T23:59:59Z",
                         "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
                         "2026-02-30T00:00:00Z", "2026-11-21T18:00:00.1234567891Z",
                         "2026-11-21t18:00:00z", "２０２６-11-21T18:00:00Z", "soon", ""]),
        names)


@st.composite
def grants(draw: st.DrawFn, policy: dict[str, Any], now: datetime,
           wild: int = 0) -> tuple[str, dict[str, Any]]:
    """A grant for something in `policy` and the path it is written to; one time in about
    `wild` (0: never), any value instead."""

    def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any],
               odds: int = 5) -> st.SearchStrategy[Any]:
        return good if not wild else st.one_of(*[good] * (max(odds, wild) - 1), bad)

    targets = list(policy.get("targets") or {"db1": {}})
    engine = next(iter(policy.get("targets", {}).values()), {}).get("engine", "postgres")
    target = draw(mostly(st.sampled_from(targets), names, 8))
    data: dict[str, Any] = {
        "grantee": draw(mostly(st.sampled_from(list(policy.get("people") or ["alice"])), names,
                               4)),
        "target": target,
        "access": draw(mostly(st.sampled_from(list(policy.get("access") or ["readonly"])),
                              names, 4)),
        "expires": draw(mostly(st.integers(10, 400).map(
            lambda m: stamp(now + timedelta(minutes=m))), timestamps(now), 3)),
        "reason": draw(mostly(st.just("INC-1 look"), names)),
    }
    if draw(st.integers(0, 3)) == 0:
        data["starts"] = draw(mostly(st.integers(-60, 60).map(
            lambda m: stamp(now + timedelta(minutes=m))), timestamps(now), 3))
    right = SCRAM if engine == "postgres" else NATIVE
    verifier = draw(mostly(st.just(right), st.one_of(
        st.sampled_from([SCRAM, NATIVE, SCRAM + "\n", "*" + "a1" * 20]), names), 3))
    if verifier or draw(st.booleans()):
        data["password_verifier"] = verifier
    folder = target if not wild or draw(st.integers(0, 9)) else draw(names)
    if not folder_ok(folder):
        folder = "elsewhere"  # the file must be writable to a real repository too
    stem = draw(st.sampled_from(["g", "a b", "é", "'\";", "-x", "x.y", "#", "\t", "x\ny"]))
    return f"grants/{folder}/{stem}.yaml", data


def folder_ok(name: str) -> bool:
    """A name a file system takes for a folder."""
    return name not in ("", ".", "..", ".git") and "\0" not in name and "/" not in name \
        and len(name.encode()) < 200


def dump(data: Any, style: dict[str, Any]) -> bytes:
    """YAML as a person or a tool might write it: any flow style, width, unicode and ending."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=style["unicode"],
                          default_flow_style=style["flow"], width=style["width"])
    if style["crlf"]:
        text = text.replace("\n", "\r\n")
    raw = text.encode()
    return codecs.BOM_UTF8 + raw if style["bom"] else raw


styles = st.fixed_dictionaries({
    "unicode": st.booleans(), "flow": st.sampled_from([False, None, True]),
    "width": st.sampled_from([80, 20, 1000]), "crlf": st.booleans(), "bom": st.booleans()})

# -- arbitrary input -------------------------------------------------------------------------------

YAML_TOKENS = [
    "grantee: ", "target: ", "access: ", "expires: ", "reason: ", "targets:", "people:",
    "access:", "  ", "    ", "\n", "\n", "\n", "- ", "-", "[", "]", "{", "}", ", ", ": ", ":",
    "&a ", "*a", "&b ", "*b", "!!str ", "!!int ", "!!map ", "!!python/object:os.system ",
    "!!python/name:os.system ", "!foo ", "!<tag:x> ", "<<: ", "? ", "---\n", "...\n",
    "%YAML 1.1\n", "%TAG ! tag:yaml.org,2002:\n", "# c", "'", '"', "|\n", ">-\n", "\t", "\r\n",
    "\r", "\ufeff", "\0", "\\", "\\x", "\\u", "2026-01-01T00:00:00Z", "2026-01-01 00:00:00",
    "~", "yes", "no", "on", "0x1F", "0o17", "1e400", ".nan", "-.inf", "9" * 30, "1_000",
    "190:20:30", "alice", "db1", "readonly", "jit_", "é", "\u2028", "\x85", "\x7f", "\x1b[31m",
    "=", "<<", "!!binary aGk=", "!!set {a}", "!!omap [a: 1]", "!!timestamp 2026-01-01",
]
yaml_text = st.lists(st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=4)),
                     max_size=60).map(_join)
raw_bytes = st.one_of(
    yaml_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.tuples(yaml_text, st.binary(min_size=1, max_size=4), yaml_text).map(
        lambda p: p[0].encode("utf-8", "surrogatepass") + p[1] + p[2].encode(
            "utf-8", "surrogatepass")),
    yaml_text.map(lambda t: t.encode("utf-16")),
)

scalars = st.one_of(
    names, st.text(max_size=30), st.integers(), st.integers(min_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.datetimes(), st.dates(), st.binary(max_size=10))
structures = st.recursive(
    scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(names, st.sampled_from(["grantee", "targets", "access",
                                                          "people", "roles", "engine"])),
                        inner, max_size=5)),
    max_leaves=25)
