"""Read a Snapshot of the access repository from a commit or from the working tree."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from . import gitrepo
from .errors import ConfigError
from .load import read_folder
from .model import Policy
from .validate import Context, Snapshot, build_snapshot


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
        policy_files = read_folder(root, ["policies"])
        grant_files = read_folder(root, ["grants"])
        commit = head
    else:
        commit = gitrepo.resolve(repo, rev)
        files = gitrepo.read_tree(repo, commit, ["policies", "grants"])
        policy_files = [f for f in files if f.path.startswith("policies/")]
        grant_files = [f for f in files if f.path.startswith("grants/")]
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
    ctx = Context(now=now, provenance=provenance, changed=changed, unknown_origin=unknown)
    return build_snapshot(policy_files, grant_files, ctx, commit, on_policy)


def _head(repo: object) -> str | None:
    try:
        return gitrepo.resolve(repo, "HEAD")  # type: ignore[arg-type]
    except ConfigError:
        return None
