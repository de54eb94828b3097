"""Pull-request checks that need no database: who may ask for whom, and what merges itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .errors import Problem
from .load import YAML_SUFFIXES, SourceFile, YamlProblem, parse_yaml
from .model import Grant, Policy
from .validate import RawGrant, Snapshot

Triple = tuple[str, str, str]  # (grantee, target, access): one login
# The grant files at the pull request's base among the paths given (None when not found).
BaseReader = Callable[[list[str]], list[SourceFile]]


def changed_grants(snapshot: Snapshot) -> list[Grant | RawGrant]:
    """The grant files the pull request adds or changes (deleted ones only take access away)."""
    found = (snapshot.grant_at(p) for p in sorted(snapshot.changed or ()))
    return [g for g in found if g is not None]


def author_problems(snapshot: Snapshot, author: str, teams: Iterable[str] = (),
                    read_base: BaseReader | None = None,
                    request_app: str | None = None) -> list[Problem]:
    """A grant for someone other than the pull request's author is refused, unless the author
    (or one of their teams) is in the target's requesters_for_others. Even then it may not
    bring a password verifier the base did not already hold for that login: whoever makes a
    verifier holds its password, and only the grantee may hold it (`read_base` reads the
    base's versions of changed files; without it, every verifier for someone else is new).
    `request_app`: the login the request workflow opens pull requests as; its sealed grants
    pass (the workflow mapped its actor and applied requesters_for_others itself, and a sealed
    password is the grantee's alone), anything else it brings is judged as usual."""
    policy = snapshot.policy
    mine = {h for h, p in policy.people.items() if p.github and p.github.lower() == author.lower()}
    problems = []
    others: list[Grant] = []
    by_app = request_app is not None and author.lower() == request_app.lower()
    for grant in changed_grants(snapshot):
        if grant.grantee in mine or (by_app and _sealed(grant)):
            continue
        if not _may_ask_for_others(policy, grant.target, author, teams):
            problems.append(Problem(grant.path, 1, f"grantee: {grant.grantee!r} is not the "
                                    f"pull request's author {author!r} (people.<handle>.github),"
                                    f" and {author!r} is not in requesters_for_others of the "
                                    "target"))
        elif isinstance(grant, Grant) and grant.password_verifier is not None:
            others.append(grant)
    if others:
        known = _base_verifiers(snapshot, [g.path for g in others], read_base)
        problems += [_foreign_verifier(g, author) for g in others
                     if g.password_verifier not in known.get(_triple(g), set())]
    return problems


def _sealed(grant: Grant | RawGrant) -> bool:
    return isinstance(grant, Grant) and grant.delivery == "sealed" \
        and grant.password_verifier is None


def _foreign_verifier(grant: Grant, author: str) -> Problem:
    return Problem(grant.path, 1, f"password_verifier: only {grant.grantee} may set the password"
                   f" of their login, and {author!r} is not {grant.grantee}'s GitHub login: a "
                   f"grant asked for someone else carries no password_verifier (the grantee "
                   f"adds one with `jitgrant password GRANT`)")


def _triple(grant: Grant) -> Triple:
    return (grant.grantee, grant.target, grant.access)


def _base_verifiers(snapshot: Snapshot, paths: list[str],
                    read_base: BaseReader | None) -> dict[Triple, set[str]]:
    """The verifiers the base already held, per login: those of the grant files the pull
    request leaves alone, and of the base's versions of `paths` (an extension copies its
    grant's verifier; an edit of a grant keeps it)."""
    changed = snapshot.changed or frozenset()
    known: dict[Triple, set[str]] = {}
    for grant in (*snapshot.grants, *snapshot.inactive):
        if grant.path not in changed and grant.password_verifier is not None:
            known.setdefault(_triple(grant), set()).add(grant.password_verifier)
    for source in read_base(paths) if read_base else []:
        try:
            data = parse_yaml(source).data if source.data is not None else None
        except YamlProblem:
            continue
        keys = ("grantee", "target", "access", "password_verifier")
        fields = [data.get(k) for k in keys] if isinstance(data, dict) else []
        if len(fields) == 4 and all(isinstance(f, str) for f in fields):
            grantee, target, access, verifier = map(str, fields)
            known.setdefault((grantee, target, access), set()).add(verifier)
    return known


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
        elif level is None or not (level.auto_approve or level.break_glass):
            # (a break-glass level is auto-approvable: validate has checked that the grantee
            # is in its allowed_groups and the lifetime within its max_duration, and each of
            # its grants is reviewed after the merge instead: breakglass.py)
            reasons.append(f"{path}: access level {grant.access!r} is not auto_approve")
        elif level.dangerous:  # a person must see superuser-equivalent access being given
            reasons.append(f"{path}: access level {grant.access!r} is dangerous")
    if any(p.severity == "error" for p in snapshot.problems):
        reasons.append("the repository has validation errors")
    return reasons
