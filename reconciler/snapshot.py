"""Read a Snapshot of the access repository from a commit or from the working tree."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import gitrepo
from .errors import ConfigError, Problem
from .load import SourceFile, read_folder
from .model import Policy
from .validate import Context, Snapshot, check_snapshot, load_policy

if TYPE_CHECKING:
    import git


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Reading 10,000 grant files, or the catalog's 10,000 logins, makes millions of small,
    long-lived objects and no cycles; the cyclic collector's passes over them cost more than
    the work itself. Pause it meanwhile, then freeze what was made so later passes skip it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def read_snapshot(repo_path: Path, rev: str | None, now: datetime,
                  base: str | None = None,
                  on_policy: Callable[[Policy], None] | None = None) -> Snapshot:
    """`rev` None reads the working tree (what pre-commit and editors see); else that commit.
    `on_policy(policy)` is called once the policy is loaded, before the grants are checked."""
    with no_gc_pauses():
        return _read_snapshot(repo_path, rev, now, base, on_policy)


def _read_snapshot(repo_path: Path, rev: str | None, now: datetime, base: str | None,
                   on_policy: Callable[[Policy], None] | None) -> Snapshot:
    repo = gitrepo.open_repo(repo_path)
    head = _head(repo)
    if rev is None:
        root = Path(str(repo.working_tree_dir))
        found = _unsafe(repo, None)
        policy_files = read_folder(root, ["policies"])
        files = _committed_bytes(repo, head, policy_files + read_folder(root, ["grants"]),
                                 found)
        policy = _policy(files[:len(policy_files)], on_policy)
        policy[1].extend(found)
        return _checked(repo, rev, head, policy, files[len(policy_files):], now, base)
    commit = gitrepo.resolve(repo, rev)
    entries = gitrepo.list_tree(repo, commit, TOPS)
    # git writes the grant files while the policy is read and loaded here
    with gitrepo.LaterFiles(repo, commit,
                            [e for e in entries if e[3].startswith("grants/")]) as grant_files:
        policy = _policy(gitrepo.read_entries(
            repo, commit, [e for e in entries if e[3].startswith("policies/")]), on_policy)
        policy[1].extend(_unsafe(repo, commit))
        return _checked(repo, rev, commit, policy, grant_files.files(), now, base)


TOPS = ("policies", "grants")


def _unsafe(repo: git.Repo, commit: str | None) -> list[Problem]:
    """A .gitattributes can make the checkout (what a pull request's checks would read) say
    something else than the commit (what apply reads); a submodule holds files apply never
    reads. Neither has any use under policies/ or grants/."""
    problems = []
    for path in gitrepo.unsafe_entries(repo, commit, TOPS):
        top = path.split("/", 1)[0]
        if path.endswith(".gitattributes"):
            what = ("git attributes under {}/ are not allowed: they can make the checked-out "
                    "files differ from the committed ones apply reads")
        else:
            what = "a submodule under {}/ is not allowed: apply reads no file inside it"
        problems.append(Problem(path, 1, what.format(top)))
    return problems


def _committed_bytes(repo: git.Repo, head: str | None, files: list[SourceFile],
                     problems: list[Problem]) -> list[SourceFile]:
    """Working-tree files git reports unchanged are judged by their committed bytes, the ones
    apply reads: an encoding, filter or `ident` attribute (in any .gitattributes, or git's
    own config) can make the checkout differ. Such a difference is an error, unless it is
    only line endings (core.autocrlf on Windows)."""
    if head is None:
        return files
    entries = {e[3]: e for e in gitrepo.list_tree(repo, head, TOPS)}
    dirty = set(gitrepo.uncommitted(repo, TOPS))
    # (a file that could not be read, too large or a bad link, is an error already)
    suspects = [entries[f.path] for f in files if f.path in entries and f.path not in dirty
                and f.data is not None
                and (f.blob != entries[f.path][1] or entries[f.path][0] == "120000")]
    if not suspects:
        return files
    committed = {c.path: c for c in gitrepo.read_entries(repo, head, suspects)}
    result = []
    for f in files:
        c = committed.get(f.path)
        if c is not None and c.blob != f.blob:
            if not _line_endings_only(f.data, c.data):
                problems.append(Problem(f.path, 1, "the checked-out file differs from the "
                                        "committed one though git sees no change (a "
                                        ".gitattributes encoding or filter?): the committed "
                                        "bytes are checked, as apply reads them"))
            f = c
        result.append(f)
    return result


def _line_endings_only(worktree: bytes | None, committed: bytes | None) -> bool:
    return worktree is not None and committed is not None \
        and worktree.replace(b"\r\n", b"\n") == committed.replace(b"\r\n", b"\n")


def _policy(files: list[SourceFile],
            on_policy: Callable[[Policy], None] | None) -> tuple[Policy, list[Problem]]:
    problems: list[Problem] = []
    policy = load_policy(files, problems)
    if on_policy is not None:
        on_policy(policy)
    return policy, problems


def _checked(repo: git.Repo, rev: str | None, commit: str | None,
             policy: tuple[Policy, list[Problem]], grant_files: list[SourceFile],
             now: datetime, base: str | None) -> Snapshot:
    files, ctx = _grants_and_context(repo, rev, commit, grant_files, now, base)
    return check_snapshot(policy[0], policy[1], files, ctx, commit)


def _grants_and_context(repo: git.Repo, rev: str | None, commit: str | None,
                        grant_files: list[SourceFile], now: datetime,
                        base: str | None) -> tuple[list[SourceFile], Context]:
    """The grant files and what their checks need to know from git: provenance, what changed
    against `base`, what lies beyond a shallow clone's boundary."""
    blobs = {f.path: f.blob for f in grant_files if f.blob}
    provenance = gitrepo.provenance(repo, commit, blobs) if commit else {}
    boundary = gitrepo.shallow_boundary(repo)
    unknown = frozenset(p for p, prov in provenance.items() if prov.commit in boundary)
    provenance = {p: prov for p, prov in provenance.items() if p not in unknown}
    if base is not None:
        changed: frozenset[str] | None = frozenset(gitrepo.changed_since(repo, base, rev))
    elif rev is None:
        changed = frozenset(f.path for f in grant_files
                            if f.path not in provenance and f.path not in unknown)
    else:
        changed = None
    return grant_files, Context(now=now, provenance=provenance, changed=changed,
                                unknown_origin=unknown)


def base_reader(repo_path: Path, base: str) -> Callable[[list[str]], list[SourceFile]]:
    """A function reading the files at `paths` as they are at `base` (absent ones left out)."""
    def read(paths: list[str]) -> list[SourceFile]:
        repo = gitrepo.open_repo(repo_path)
        return gitrepo.read_tree(repo, gitrepo.resolve(repo, base), paths)
    return read


def read_merge_base(repo_path: Path, base: str, rev: str | None, now: datetime) -> Snapshot:
    """The snapshot where `rev` (the working tree when None) branched from `base`: what the
    pull request is measured against."""
    repo = gitrepo.open_repo(repo_path)
    return read_snapshot(repo_path, gitrepo.merge_base(repo, base, rev), now)


def _head(repo: object) -> str | None:
    try:
        return gitrepo.resolve(repo, "HEAD")  # type: ignore[arg-type]
    except ConfigError:
        return None
