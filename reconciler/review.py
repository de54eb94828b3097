"""Pull-request checks that need no database: who may ask for whom, and what merges itself."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import Problem
from .load import YAML_SUFFIXES
from .model import Grant, Policy
from .validate import RawGrant, Snapshot


def changed_grants(snapshot: Snapshot) -> list[Grant | RawGrant]:
    """The grant files the pull request adds or changes (deleted ones only take access away)."""
    found = (snapshot.grant_at(p) for p in sorted(snapshot.changed or ()))
    return [g for g in found if g is not None]


def author_problems(snapshot: Snapshot, author: str, teams: Iterable[str] = ()) -> list[Problem]:
    """A grant for someone other than the pull request's author is refused, unless the author
    (or one of their teams) is in the target's requesters_for_others."""
    policy = snapshot.policy
    mine = {h for h, p in policy.people.items() if p.github and p.github.lower() == author.lower()}
    problems = []
    for grant in changed_grants(snapshot):
        if grant.grantee in mine:
            continue
        if _may_ask_for_others(policy, grant.target, author, teams):
            continue
        problems.append(Problem(grant.path, 1, f"grantee: {grant.grantee!r} is not the pull "
                                f"request's author {author!r} (people.<handle>.github), and "
                                f"{author!r} is not in requesters_for_others of the target"))
    return problems


def _may_ask_for_others(policy: Policy, target_name: str | None, author: str,
                        teams: Iterable[str]) -> bool:
    target = policy.targets.get(target_name or "")
    if target is None:
        return False
    allowed = {a.lower().lstrip("@") for a in target.requesters_for_others}
    return author.lower() in allowed or any(t.lower().lstrip("@") in allowed for t in teams)


def not_auto_approvable(snapshot: Snapshot) -> list[str]:
    """Why the pull request needs a human: anything but new or changed grants whose access level
    has auto_approve: true. Deleting a grant file only takes access away and is allowed."""
    if snapshot.changed is None:
        return ["auto-approval needs --base: what the pull request changes is unknown"]
    reasons = []
    for path in sorted(snapshot.changed):
        grant = snapshot.grant_at(path)
        if grant is None:
            # Every YAML file under grants/ is read, valid or not: one that is not there was
            # deleted. Anything else is not a grant.
            if not (path.startswith("grants/") and path.endswith(YAML_SUFFIXES)):
                reasons.append(f"{path}: not a grant file")
            continue
        level = snapshot.policy.access.get(grant.access or "")
        if not isinstance(grant, Grant):
            reasons.append(f"{path}: the grant is invalid")
        elif level is None or not level.auto_approve:
            reasons.append(f"{path}: access level {grant.access!r} is not auto_approve")
        elif level.dangerous:  # a person must see superuser-equivalent access being given
            reasons.append(f"{path}: access level {grant.access!r} is dangerous")
    if any(p.severity == "error" for p in snapshot.problems):
        reasons.append("the repository has validation errors")
    return reasons
