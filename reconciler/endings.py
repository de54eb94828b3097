"""Who a revoked login belonged to, and which pull request ended it, when no grant file at the
reconciled commit says so any more: the file was deleted (or rewritten to another login), or
its person was offboarded. Read from the first-parent line of git, for the audit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from . import gitrepo
from .load import MAX_FILE_BYTES, SourceFile, YamlProblem, parse_yaml
from .model import Policy, Provenance, Target, login_name
from .plan import Action
from .validate import load_policy

if TYPE_CHECKING:
    import git

# How far back to look: a revocation follows its pull request by one scheduled run, so the
# change is near the tip; a bound keeps a login nobody can explain from reading all history.
MAX_CHANGES = 5000
BATCH = 200


@dataclass(frozen=True)
class Ending:
    """The grant a revoked login came from, and the commit that ended it."""

    grantee: str
    access: str
    file: str | None  # the grant file removed or rewritten (None: the person changed)
    provenance: Provenance


def endings(repo: git.Repo, commit: str | None, policy: Policy, target: Target,
            actions: Iterable[Action]) -> dict[str, Ending]:
    """login -> its Ending, for this target's revocations of removed and offboarded logins."""
    actions = list(actions)
    removed = {a.login for a in actions if a.kind == "revoke" and a.cause == "removed"}
    offboarded = {a.login: (a.grantee, a.access) for a in actions
                  if a.kind == "revoke" and a.cause == "offboarded" and a.grantee and a.access}
    if commit is None:
        return {}
    found = _removed(repo, commit, target, removed) if removed else {}
    if offboarded:
        found.update(_offboarded(repo, commit, offboarded))
    return found


def _removed(repo: git.Repo, commit: str, target: Target, logins: set[str]) -> dict[str, Ending]:
    """Newest first, the grant files deleted or rewritten: the first whose old content maps to
    a login is the change that ended it."""
    found: dict[str, Ending] = {}
    changes = islice(gitrepo.mainline_changes(repo, commit, "grants", "DM"), MAX_CHANGES)
    for batch in _batches(changes):
        blobs = gitrepo.cat_blobs(repo, sorted({c.old_blob for c in batch}))
        for change in batch:
            owner = _owner(change.path, blobs.get(change.old_blob), target)
            if owner is None:
                continue
            name = login_name(target.role_prefix, owner[0], owner[1], target.engine)
            if name in logins and name not in found:
                found[name] = Ending(owner[0], owner[1], change.path, change.provenance)
        if len(found) == len(logins):
            break
    return found


def _batches(changes: Iterator[gitrepo.MainlineChange]) -> Iterator[list[gitrepo.MainlineChange]]:
    while batch := list(islice(changes, BATCH)):
        yield batch


def _owner(path: str, data: bytes | None, target: Target) -> tuple[str, str] | None:
    """(grantee, access) of an old grant file of `target`, or None."""
    if data is None or len(data) > MAX_FILE_BYTES:
        return None
    try:
        doc = parse_yaml(SourceFile(path, data))
    except YamlProblem:
        return None
    raw = doc.data if isinstance(doc.data, dict) else {}
    grantee, access, where = raw.get("grantee"), raw.get("access"), raw.get("target")
    folder = path.split("/")[1] if path.count("/") == 2 else None
    if isinstance(grantee, str) and isinstance(access, str) and target.name in (where, folder):
        return grantee, access
    return None


def _offboarded(repo: git.Repo, commit: str,
                logins: Mapping[str, tuple[str | None, str | None]]) -> dict[str, Ending]:
    """The newest first-parent commit that changed the policies, before which the person was
    active: that change offboarded them."""
    found: dict[str, Ending] = {}
    seen: set[str] = set()
    for change in islice(gitrepo.mainline_changes(repo, commit, "policies", "ADM"), MAX_CHANGES):
        if change.provenance.commit in seen or change.parent is None:
            continue
        seen.add(change.provenance.commit)
        before = load_policy(gitrepo.read_tree(repo, change.parent, ["policies"]), [])
        for login, (grantee, access) in logins.items():
            person = before.people.get(grantee or "")
            if login not in found and person is not None and person.active and grantee \
                    and access:
                found[login] = Ending(grantee, access, None, change.provenance)
        if len(found) == len(logins):
            break
    return found
