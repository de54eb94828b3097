"""What a pull request changes: the logins `apply` would keep at the merge result against those
it keeps at the merge base, login by login, at the same `now`. Pure: no database, no git.

This is the reviewer's summary. It is not the plan against a server (that shows drift and
what has already expired too) and not the list of grant files the pull request touches (a
change to people or to an access level revokes or changes logins without touching one)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from .model import DesiredLogin, DesiredState, KnownLogin, Target
from .plan import desired_state
from .validate import Snapshot

VERBS = {"create": "creates", "update": "updates", "revoke": "revokes"}


@dataclass(frozen=True)
class LoginChange:
    target: str
    kind: str  # create | update | revoke
    login: str
    cause: str  # granted | extended | shortened | roles changed | ... | removed | offboarded
    grantee: str
    access: str
    expires: datetime | None  # at the merge result (create, update) or at the base (revoke)
    before: datetime | None = None  # update: the expiry at the base
    details: tuple[str, ...] = ()
    grant_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Review:
    """The difference, and what of it is not a login's (targets added, removed, renamed)."""

    base: str
    changes: tuple[LoginChange, ...]
    notes: tuple[str, ...] = ()

    @property
    def totals(self) -> dict[str, int]:
        counted = Counter(c.kind for c in self.changes)
        return {kind: counted[kind] for kind in VERBS if counted[kind]}

    @property
    def headline(self) -> str:
        """`revokes 40 logins, creates 1 login`: revocations first, they are what hurts."""
        totals = self.totals
        if not totals:
            return "changes no login"
        order = ("revoke", "create", "update")
        return ", ".join(f"{VERBS[k]} {totals[k]} login{'s' if totals[k] != 1 else ''}"
                         for k in order if k in totals)


def review_snapshots(base: Snapshot, head: Snapshot, now: datetime,
                     only: Sequence[str] = ()) -> Review:
    """The review of `head` against `base` (the merge base), both read at the same `now`;
    `only`: the names or globs of --target (a target only the base has is matched too)."""
    def states(snapshot: Snapshot) -> dict[str, DesiredState]:
        return {name: desired_state(snapshot, target, now)
                for name, target in snapshot.policy.targets.items()
                if not only or any(fnmatchcase(name, p) for p in only)}
    return review(base.commit or "", states(base), states(head))


def review(base_commit: str, before: dict[str, DesiredState],
           after: dict[str, DesiredState]) -> Review:
    """`before`/`after`: each target's desired state at the merge base and at the head."""
    changes: list[LoginChange] = []
    notes: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            notes.append(_target_note(name, old, new))
            if new is not None:
                changes.extend(_creates(new, {}))
            continue
        notes.extend(_target_changes(old.target, new.target))
        changes.extend(_target_diff(old, new))
    return Review(base_commit, tuple(_moved(changes)), tuple(n for n in notes if n))


def _moved(changes: list[LoginChange]) -> list[LoginChange]:
    """A grant file whose access level or target changed ends one login and makes another:
    the revocation says so rather than `removed`."""
    made = {path: c for c in changes if c.kind == "create" for path in c.grant_files}
    out = []
    for change in changes:
        new = next((made[p] for p in change.grant_files if p in made), None)
        if change.kind == "revoke" and change.cause == "removed" and new is not None:
            cause = (f"target changed to {new.target}" if new.target != change.target
                     else f"access level changed to {new.access}")
            change = replace(change, cause=cause)
        out.append(change)
    return out


def _target_note(name: str, old: DesiredState | None, new: DesiredState | None) -> str:
    if new is not None:
        return f"target {name} is added"
    assert old is not None
    count = len(old.logins)
    return (f"target {name} is removed: apply stops managing it; its {count} current "
            f"login{'s' if count != 1 else ''} are left as they are until their expiry")


def _target_changes(old: Target, new: Target) -> list[str]:
    """Changes of a target that move its logins somewhere apply does not look any more."""
    out = []
    if old.role_prefix != new.role_prefix:
        out.append(f"target {new.name}: role_prefix {old.role_prefix!r} becomes "
                   f"{new.role_prefix!r}; logins under the old prefix are left alone")
    if old.engine != new.engine or (old.dsn_env, old.dsn_file) != (new.dsn_env, new.dsn_file):
        out.append(f"target {new.name}: now {new.engine} through {_source(new)} (was "
                   f"{old.engine} through {_source(old)}); the old server's logins are "
                   f"left alone")
    if old.expiry_backstop != new.expiry_backstop:
        out.append(f"target {new.name}: expiry_backstop {old.expiry_backstop or 'none'} "
                   f"becomes {new.expiry_backstop or 'none'}")
    return out


def _source(target: Target) -> str:
    return f"${target.dsn_env}" if target.dsn_env else f"the file {target.dsn_file}"


def _target_diff(old: DesiredState, new: DesiredState) -> list[LoginChange]:
    kept = _applied(old, new)
    out = list(_creates(new, old.logins))
    for name in sorted(set(old.logins) & kept):
        change = _update(new.target.name, old.logins[name], new.logins[name])
        if change is not None:
            out.append(change)
    for name in sorted(set(old.logins) - kept):
        out.append(_revoke(new.target.name, old.logins[name], new.known.get(name),
                           new.access_levels))
    return sorted(out, key=lambda c: (("revoke", "create", "update").index(c.kind), c.login))


def _applied(old: DesiredState, new: DesiredState) -> set[str]:
    """The base's logins apply keeps at the head. With invalid policies apply creates and
    changes nothing, and keeps what has not ended (unless its person is marked inactive)."""
    if new.may_grant:
        return set(new.logins)
    return {name for name in old.logins
            if not ((k := new.known.get(name)) and k.cause == "offboarded" and k.definite)}


def _creates(new: DesiredState, had: Mapping[str, DesiredLogin]) -> list[LoginChange]:
    if not new.may_grant:
        return []
    return [LoginChange(new.target.name, "create", name, "granted", want.grantee, want.access,
                        want.expires, grant_files=tuple(g.path for g in want.grants))
            for name, want in sorted(new.logins.items()) if name not in had]


def _update(target: str, was: DesiredLogin, now: DesiredLogin) -> LoginChange | None:
    details = []
    if now.expires > was.expires:
        details.append("extended")
    elif now.expires < was.expires:
        details.append("shortened")
    if set(now.roles) != set(was.roles):
        details.append(f"roles {', '.join(was.roles) or 'none'} become "
                       f"{', '.join(now.roles) or 'none'}")
    if now.connection_limit != was.connection_limit:
        details.append(f"connection limit {_limit(was.connection_limit)} becomes "
                       f"{_limit(now.connection_limit)}")
    if now.verifier != was.verifier:
        details.append("new password")
    if not details:
        return None
    cause = details[0] if details[0] in ("extended", "shortened") else "changed"
    return LoginChange(target, "update", now.name, cause, now.grantee, now.access, now.expires,
                       before=was.expires, details=tuple(details),
                       grant_files=tuple(g.path for g in now.grants))


def _limit(value: int | None) -> str:
    return "none" if value is None else str(value)


def _revoke(target: str, was: DesiredLogin, known: KnownLogin | None,
            levels: frozenset[str]) -> LoginChange:
    """Why the login ends: what the head says of it, else its access level went away, else
    its grant file did."""
    if known is not None and known.cause != "granted":
        cause = known.cause
    elif was.access not in levels:
        cause = "access level removed"
    else:
        cause = "removed"
    files = known.grant_files if known is not None else tuple(g.path for g in was.grants)
    return LoginChange(target, "revoke", was.name, cause, was.grantee, was.access, was.expires,
                       grant_files=files)
