"""A generated access repository: one target, one access level, N people with one grant each,
committed at once through `git fast-import`."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.credentials import mysql_native_verifier, new_password
from reconciler.timeutil import iso

TARGET = "bench"
ACCESS = "readonly"
DSN_ENV = "JITGRANT_BENCH_TARGET_DSN"
LIFETIME = timedelta(hours=4)  # under the access level's 8h
# People per policy file: the loader refuses files over 1 MiB (about 16,000 people here), and
# the policies' maps are merged across files, so a large organisation splits its people.
PEOPLE_PER_FILE = 10_000
IDENTITY = {"GIT_AUTHOR_NAME": "Bench Author", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench Committer", "GIT_COMMITTER_EMAIL": "ci@example.com"}


@dataclass(frozen=True)
class AccessRepo:
    root: Path
    grants: int
    expires: datetime  # every grant's expiry


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}, check=True)
    return proc.stdout.strip()


def person(index: int) -> str:
    return f"p{index:06d}"


def build(root: Path, grants: int, prefix: str, group: str, now: datetime,
          verifiers: bool = False, engine: str = "postgres") -> AccessRepo:
    """Write policies + `grants` grant files as one commit of a new repository at `root`.
    With `verifiers` each postgres grant carries a SCRAM-SHA-256 password verifier; a mysql
    grant always carries a mysql_native_password hash (the engine requires one)."""
    expires = now.replace(microsecond=0) + LIFETIME
    verifier = _verifier(engine, verifiers)
    files = [("policies/targets.yaml", _targets(prefix, group, engine))]
    files += ((f"policies/people-{start // PEOPLE_PER_FILE:03d}.yaml",
               _people(start, min(start + PEOPLE_PER_FILE, grants)))
              for start in range(0, grants, PEOPLE_PER_FILE))
    files += ((f"grants/{TARGET}/{person(i)}-{ACCESS}.yaml", _grant(i, expires, verifier))
              for i in range(grants))
    commit_files(root, files, f"{grants} grants on {TARGET}")
    return AccessRepo(root, grants, expires)


def commit_files(root: Path, files: Iterable[tuple[str, str]], message: str) -> None:
    """A new repository at `root` whose `main` holds `files` in one commit, checked out as a
    fresh clone would be. The blobs go through one `git fast-import` and the index through one
    `update-index --index-info`: a commit of tens of thousands of files in seconds, where
    fast-import's own trees (a linear scan per file added to a folder) would take minutes."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", IDENTITY["GIT_COMMITTER_NAME"])
    git(root, "config", "user.email", IDENTITY["GIT_COMMITTER_EMAIL"])
    paths, stream = _blobs(files)
    marks = root / ".git" / "bench-marks"
    _feed(root, stream, "fast-import", "--quiet", f"--export-marks={marks}")
    shas = dict(line.split() for line in marks.read_text().splitlines())
    marks.unlink()
    _feed(root, "".join(f"100644 {shas[f':{n}']}\t{path}\n" for n, path in
                        enumerate(paths, 1)).encode(), "update-index", "--index-info")
    tree = git(root, "write-tree")
    commit = _feed(root, message.encode(), "commit-tree", tree)
    git(root, "update-ref", "refs/heads/main", commit)
    git(root, "checkout", "-q", "-f", "main")


def _blobs(files: Iterable[tuple[str, str]]) -> tuple[list[str], bytes]:
    """fast-import commands writing each file's content as a blob with mark :1, :2, ..."""
    paths: list[str] = []
    out: list[bytes] = []
    for path, text in sorted(files):
        data = text.encode()
        paths.append(path)
        out += [b"blob\nmark :%d\ndata %d\n" % (len(paths), len(data)), data, b"\n"]
    return paths, b"".join(out)


def _feed(root: Path, data: bytes, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], input=data, capture_output=True,
                          env={**os.environ, **IDENTITY})
    if proc.returncode:
        raise RuntimeError(f"git {args[0]}: exit {proc.returncode}: "
                           f"{proc.stderr.decode()[-500:]}")
    return proc.stdout.decode().strip()


def _verifier(engine: str, verifiers: bool) -> Callable[[], str] | None:
    if engine == "mysql":
        return mysql_verifier
    return fake_verifier if verifiers else None


def _targets(prefix: str, group: str, engine: str) -> str:
    return f"""targets:
  {TARGET}:
    engine: {engine}
    dsn_env: {DSN_ENV}
    environment: production
    role_prefix: {prefix}
access:
  {ACCESS}:
    description: Read-only access to the application schemas
    roles: [{group}]
    max_duration: 8h
    connection_limit: 3
"""


def _people(start: int, end: int) -> str:
    lines = ["people:"]
    for index in range(start, end):
        name = person(index)
        lines += [f"  {name}:", f"    email: {name}@example.com", "    groups: [backend]"]
    return "\n".join(lines) + "\n"


def _grant(index: int, expires: datetime, verifier: Callable[[], str] | None) -> str:
    text = (f"grantee: {person(index)}\ntarget: {TARGET}\naccess: {ACCESS}\n"
            f"expires: {iso(expires)}\nreason: BENCH-{index} load test\nticket: BENCH-{index}\n")
    return text + (f"password_verifier: \"{verifier()}\"\n" if verifier else "")


def fake_verifier() -> str:
    """A well-formed SCRAM-SHA-256 verifier of random keys, shaped like what `jitgrant request`
    writes, without its PBKDF2 cost on our side (nobody logs in here). The server still runs
    PBKDF2 once per CREATE ROLE: it checks that the verifier is not that of an empty password."""
    def b64(n: int) -> str:
        return base64.b64encode(secrets.token_bytes(n)).decode()
    return f"SCRAM-SHA-256$4096:{b64(16)}${b64(32)}:{b64(32)}"


def mysql_verifier() -> str:
    """The mysql_native_password hash of a random password: two SHA-1s, nothing to save."""
    return mysql_native_verifier(new_password())
