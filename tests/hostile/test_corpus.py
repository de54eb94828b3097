"""Every file of tests/hostile/corpus/ (and the few made at test time: a 10 MiB file, a 120 KB
nesting bomb, symlinks) as a grant and as a policy file of a real access repository, beside a
valid grant: one clean `path:line: message` for a bad file, none for a good one, exit 1 from the
real `jitgrant validate`, no traceback, and the valid grant still planned.

README.md in the corpus folder lists each file and its expected outcome; EXPECTED below is the
same table, and a test keeps the two in step.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler.apply import reconcile
from reconciler.cli import main
from reconciler.load import MAX_FILE_BYTES
from reconciler.snapshot import read_snapshot
from reconciler.validate import Snapshot
from tests.helpers import AccessRepo, grant, policy, utc
from tests.hostile.world import check_problem, plan_everything

CORPUS = Path(__file__).parent / "corpus"
JITGRANT = str(Path(sys.executable).with_name("jitgrant"))
SIBLING = "grants/db1/sibling.yaml"
SIBLING_LOGIN = "jit_alice_readonly"
LARGE_BYTES = 10 * 1024 * 1024
TRACEBACK = re.compile(r"Traceback|internal error|This is a bug")


@dataclass(frozen=True)
class Bad:
    """One problem in the file: at `line`, with a message matching `message` (a regex)."""

    line: int
    message: str


VALID = None
DEPTH = "nested more than 32 levels deep"
ALIAS = re.escape("YAML aliases (*name) are not allowed")
EMPTY = "the file is empty"
MAPPING = "must be a mapping"
PLAIN_KEYS = re.escape("keys must be plain strings (no merge keys or complex keys)")
NO_TOKEN = "invalid YAML: found character that cannot start any token"
EXPECTED: dict[str, Bad | None] = {
    # Both as a grant and as a policy file: the file itself is unusable.
    "billion-laughs.yaml": Bad(2, ALIAS),
    "deep-flow.yaml": Bad(1, DEPTH),
    "deep-block.yaml": Bad(34, DEPTH),
    "nul-byte.yaml": Bad(1, "the file contains a NUL byte"),
    "bom-utf16.yaml": Bad(1, "the file is UTF-16 or UTF-32, not UTF-8"),
    "utf16le-no-bom.yaml": Bad(1, "the file contains a NUL byte"),
    "bom-only.yaml": Bad(1, EMPTY),
    "non-utf8.yaml": Bad(5, "the file is not UTF-8"),
    "control-character.yaml": Bad(3, re.escape("invalid YAML: the character U+0007 is not "
                                               "allowed")),
    "tab-indentation.yaml": Bad(3, NO_TOKEN),
    "duplicate-keys.yaml": Bad(6, "duplicate key 'grantee'"),
    "alias.yaml": Bad(5, ALIAS),
    "merge-key.yaml": Bad(3, PLAIN_KEYS),
    "complex-key.yaml": Bad(1, PLAIN_KEYS),
    "python-tag.yaml": Bad(1, "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply"),
    "python-name-tag.yaml": Bad(2, "invalid YAML: could not determine a constructor for the "
                                   "tag 'tag:yaml.org,2002:python/name:os.system'"),
    "custom-tag.yaml": Bad(2, "invalid YAML: could not determine a constructor for the tag "
                              "'!vault'"),
    "set-tag.yaml": Bad(1, "unsupported YAML tag 'tag:yaml.org,2002:set'"),
    "bad-bool-tag.yaml": Bad(1, "invalid value: 'maybe' is not a valid bool"),
    "huge-integer.yaml": Bad(5, "invalid value: a number of 5000 characters is too long"),
    "bad-escape.yaml": Bad(2, "invalid YAML: found unknown escape character"),
    "unclosed-flow.yaml": Bad(1, "invalid YAML: did not find expected ',' or ']'"),
    "unclosed-quote.yaml": Bad(2, "invalid YAML: found unexpected end of stream"),
    "multi-document.yaml": Bad(6, "invalid YAML: but found another document"),
    "empty.yaml": Bad(1, EMPTY),
    "whitespace-only.yaml": Bad(3, NO_TOKEN),  # libyaml: a tab on a blank line
    "only-a-comment.yaml": Bad(1, EMPTY),
    "top-level-list.yaml": Bad(1, MAPPING),
    "top-level-scalar.yaml": Bad(1, MAPPING),
    "top-level-null.yaml": Bad(1, MAPPING),
    # Made at test time (see README.md).
    "large.yaml": Bad(1, f"file is {LARGE_BYTES} bytes, over the limit of {MAX_FILE_BYTES}"),
    "deep-crash.yaml": Bad(1, DEPTH),
    "symlink-outside.yaml": Bad(1, "symlink leads outside the repository"),
    "symlink-dangling.yaml": Bad(1, "cannot read: the symlink leads nowhere|symlink target "
                                    r"\S+/nowhere\.yaml is not a file"),
    "symlink-loop.yaml": Bad(1, r"cannot read: symlink loop|symlink target \S+ is not a file"),
    "symlink-inside.yaml": VALID,
    # As a grant only.
    "grant-bom-utf8.yaml": VALID,
    "grant-crlf.yaml": VALID,
    "grant-cr-only.yaml": VALID,
    "grant-tabs-in-values.yaml": VALID,
    "grant-no-final-newline.yaml": VALID,
    "grant-anchor-unused.yaml": VALID,
    "grant-quoted-everything.yaml": VALID,
    "grant-unicode-reason.yaml": VALID,
    "grant-flow-style.yaml": VALID,
    "grant-comments-everywhere.yaml": VALID,
    "grant-timestamp-no-zone.yaml": Bad(4, re.escape("expires: must include a time zone (Z or "
                                                     "+HH:MM)")),
    "grant-date-only.yaml": Bad(4, "expires: must be an RFC 3339 date and time"),
    "grant-expires-integer.yaml": Bad(4, "expires: must be a string"),
    "grant-expires-impossible.yaml": Bad(4, "expires: is not a valid date and time"),
    "grant-grantee-injection.yaml": Bad(1, "grantee: invalid value \"alice'; DROP ROLE"),
    "grant-grantee-unicode.yaml": Bad(1, "grantee: invalid value 'alİce'"),
    "grant-grantee-uppercase.yaml": Bad(1, "grantee: invalid value 'Alice'"),
    "grant-grantee-boolean.yaml": Bad(1, "grantee: must be a string"),
    "grant-grantee-newline.yaml": Bad(1, re.escape("grantee: invalid value 'alice\\n'")),
    "grant-reason-null.yaml": Bad(5, "reason: must be a string"),
    "grant-reason-too-long.yaml": Bad(5, "reason: longer than 2000 characters"),
    "grant-unknown-key.yaml": Bad(6, "unknown key 'approved_by'"),
    "grant-wrong-folder.yaml": Bad(2, "target: 'db2' does not match the folder grants/db1/"),
    "grant-unknown-access.yaml": Bad(3, "access: unknown access level 'superuser'"),
    "grant-verifier-injection.yaml": Bad(6, "password_verifier: must be a SCRAM-SHA-256"),
    "grant-missing-reason.yaml": Bad(1, "missing required key 'reason'"),
    # As a policy file only.
    "policy-bom-utf8.yaml": VALID,
    "policy-crlf.yaml": VALID,
    "policy-hostile-role-names.yaml": VALID,
    "policy-prefix-collision.yaml": Bad(2, "access.collide.roles: 'jit_readers' is inside the "
                                           "namespace 'jit_' of target db1"),
    "policy-role-with-nul.yaml": Bad(4, re.escape("access.nul.roles.0: invalid value "
                                                  "'app\\x00ro'")),
    "policy-role-too-long.yaml": Bad(4, "access.long.roles.0: longer than 63 characters"),
    "policy-redefined-person.yaml": Bad(2, r"people.alice is defined twice: in "
                                           r"policies/main.yaml:\d+ and here"),
    "policy-empty-section.yaml": Bad(4, "access: must be a mapping"),
    "policy-huge-connection-limit.yaml": Bad(5, "access.wide.connection_limit: "
                                                "99999999999999999999 is greater than the "
                                                "maximum of 10000"),
    "policy-bad-prefix.yaml": Bad(5, "targets.db9.role_prefix: invalid value"),
    "policy-never-duration.yaml": Bad(3, "access.forever.max_duration: must be a duration"),
}
GENERATED = ("large.yaml", "deep-crash.yaml", "symlink-outside.yaml", "symlink-dangling.yaml",
             "symlink-loop.yaml", "symlink-inside.yaml")
IN_PROCESS_UNSAFE = {"deep-crash.yaml"}  # were it to regress, it would kill the test session


def roles_of(name: str) -> tuple[str, ...]:
    if name.startswith("grant-"):
        return ("grant",)
    if name.startswith("policy-"):
        return ("policy",)
    return ("grant", "policy")


def where(name: str, role: str) -> str:
    return f"grants/db1/{name}" if role == "grant" else f"policies/{name}"


CASES = [(name, role) for name in EXPECTED for role in roles_of(name)]


# -- the repository --------------------------------------------------------------------------------


def base(repo: AccessRepo) -> None:
    """The policies of the helpers, plus a level that lets the corpus's grants (expiring in 2999)
    be valid as they are, and a valid grant beside the corpus file."""
    pol = policy()
    pol["access"]["corpus"] = {"roles": ["app_readonly"], "max_duration": "999999w"}
    repo.write("policies/main.yaml", pol)
    repo.write(SIBLING, grant(expires=utc(hours=2)))
    repo.write("shared/grant.txt", (CORPUS / "grant-crlf.yaml").read_bytes())
    repo.write("shared/policy.txt", b"people:\n  gina:\n    groups: [sre]\n")


def place(repo: AccessRepo, name: str, role: str, outside: Path) -> None:
    """Write corpus file `name` where a file of `role` lives (or make it, for GENERATED)."""
    path = repo.root / where(name, role)
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "large.yaml":
        recipe = (CORPUS / "large.recipe").read_text().splitlines(keepends=True)
        line = recipe[-1].encode()
        path.write_bytes((line * (LARGE_BYTES // len(line) + 1))[:LARGE_BYTES])
    elif name == "deep-crash.yaml":
        path.write_bytes(b"grantee: " + b"[" * 60_000 + b"]" * 60_000 + b"\n")
    elif name == "symlink-outside.yaml":
        secret = outside / "secret.yaml"
        secret.write_text("grantee: alice\n")
        path.symlink_to(secret)
    elif name == "symlink-dangling.yaml":
        path.symlink_to("nowhere.yaml")
    elif name == "symlink-loop.yaml":
        path.symlink_to(name)
    elif name == "symlink-inside.yaml":
        path.symlink_to("../../shared/grant.txt" if role == "grant" else "../shared/policy.txt")
    else:
        path.write_bytes((CORPUS / name).read_bytes())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


# -- one file at a time, in process ----------------------------------------------------------------


def check_snapshot(snapshot: Snapshot, name: str, role: str) -> None:
    path = where(name, role)
    expected = EXPECTED[name]
    mine = [p for p in snapshot.problems if p.path == path]
    for problem in snapshot.problems:
        check_problem(problem)
    if expected is VALID:
        assert mine == [], mine
    else:
        assert len(mine) == 1, mine
        assert mine[0].line == expected.line, mine[0]
        assert re.search(expected.message, mine[0].message), mine[0]
        assert mine[0].severity == "error"
    others = [p for p in snapshot.errors if p.path != path]
    assert others == [], others  # nothing else is blamed
    # Fail closed per file: the valid grant beside it is valid, and planned unless policies
    # are invalid (then nothing is granted at all).
    assert SIBLING in {g.path for g in snapshot.grants}
    run = reconcile(snapshot, datetime.now(timezone.utc), offline=True)
    created = {a.login for t in run.targets for a in (t.plan.actions if t.plan else ())
               if a.kind == "create"}
    if snapshot.policy.valid:
        assert SIBLING_LOGIN in created
    else:
        assert created == set()
    plan_everything(snapshot, datetime.now(timezone.utc), seed=len(name))


@pytest.mark.parametrize(("name", "role"), [c for c in CASES if c[0] not in IN_PROCESS_UNSAFE],
                         ids=[f"{r}:{n}" for n, r in CASES if n not in IN_PROCESS_UNSAFE])
def test_corpus_file(tmp_path: Path, outside: Path, name: str, role: str) -> None:
    repo = AccessRepo(tmp_path / "repo")
    base(repo)
    place(repo, name, role, outside)
    repo.commit("corpus")
    now = datetime.now(timezone.utc)
    check_snapshot(read_snapshot(repo.root, "HEAD", now), name, role)  # from the commit
    check_snapshot(read_snapshot(repo.root, None, now), name, role)  # the working tree
    result = CliRunner().invoke(main, ["validate", "--repo", str(repo.root)])
    assert not TRACEBACK.search(result.output), result.output
    lines = result.stderr.splitlines()
    if EXPECTED[name] is VALID:
        assert result.exit_code == 0, result.output
        assert lines == []
    else:
        assert result.exit_code == 1, result.output
        assert len(lines) == 1 and lines[0].startswith(where(name, role) + ":"), lines


# -- the whole corpus at once, through the installed command ---------------------------------------


@pytest.fixture(scope="module", params=["grant", "policy"])
def corpus_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, AccessRepo]]:
    role = str(request.param)
    root = tmp_path_factory.mktemp(f"corpus-{role}")
    outside = root / "outside"
    outside.mkdir()
    repo = AccessRepo(root / "repo")
    base(repo)
    for name in EXPECTED:
        if role in roles_of(name):
            place(repo, name, role, outside)
    repo.commit("the whole corpus")
    yield role, repo


def _jitgrant(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.run([JITGRANT, *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_whole_corpus_through_jitgrant_validate(corpus_repo: tuple[str, AccessRepo]) -> None:
    role, repo = corpus_repo
    proc = _jitgrant("validate", "--repo", str(repo.root))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert not TRACEBACK.search(proc.stdout + proc.stderr), proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    for name, expected in EXPECTED.items():
        if role not in roles_of(name):
            continue
        prefix = where(name, role) + ":"
        mine = [line for line in lines if line.startswith(prefix)]
        if expected is VALID:
            assert mine == [], mine
        else:
            assert len(mine) == 1, (name, mine)
            assert mine[0].startswith(f"{prefix}{expected.line}: "), mine[0]
    assert not [line for line in lines if line.startswith(SIBLING)]
    invalid = sum(1 for n, e in EXPECTED.items() if role in roles_of(n) and e is not VALID)
    if role == "grant":
        assert f"{invalid} invalid" in proc.stdout, proc.stdout


def test_whole_corpus_through_jitgrant_plan(corpus_repo: tuple[str, AccessRepo]) -> None:
    role, repo = corpus_repo
    proc = _jitgrant("plan", "--offline", "--repo", str(repo.root))
    assert proc.returncode == 1, proc.stderr[-2000:]  # problems: exit 1, whatever else
    assert not TRACEBACK.search(proc.stdout + proc.stderr), proc.stderr[-2000:]
    if role == "grant":  # the valid grants are still planned
        assert "create" in proc.stdout and SIBLING_LOGIN in proc.stdout, proc.stdout
        assert "jit_alice_corpus" in proc.stdout, proc.stdout
    else:  # invalid policies: nothing is granted, and the plan says so
        assert SIBLING_LOGIN not in proc.stdout, proc.stdout


# -- the corpus and its README agree ---------------------------------------------------------------


def test_every_corpus_file_is_listed_with_its_outcome() -> None:
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix == ".yaml"}
    assert on_disk == set(EXPECTED) - set(GENERATED)
    readme = (CORPUS / "README.md").read_text()
    listed = dict(re.findall(r"^\| `([^`]+)` \| [^|]+ \| [^|]+ \| (.+) \|$", readme,
                             re.MULTILINE))
    assert set(listed) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        if expected is VALID:
            assert listed[name] == "valid", name
        else:
            assert listed[name].startswith(f"line {expected.line}: "), (name, listed[name])


def test_the_corpus_files_are_what_the_readme_says_they_are() -> None:
    assert (CORPUS / "bom-utf16.yaml").read_bytes().startswith(b"\xff\xfe")
    assert b"\r\n" in (CORPUS / "grant-crlf.yaml").read_bytes()
    assert b"\n" not in (CORPUS / "grant-cr-only.yaml").read_bytes()
    assert b"\0" in (CORPUS / "nul-byte.yaml").read_bytes()
    assert yaml.safe_load((CORPUS / "grant-bom-utf8.yaml").read_bytes())["grantee"] == "alice"
    assert sum(1 for _ in CORPUS.iterdir()) < 100 and all(
        p.stat().st_size < 16_384 for p in CORPUS.iterdir())
