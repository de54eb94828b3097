"""The requester's side: `jitgrant request`, `extend` and `revoke`.

Each makes exactly one commit, whose parent is HEAD, on a new branch `access/<handle>/...`,
ready to push and open as a pull request. The commit is built with git plumbing in a temporary
index, so the checkout, the index and the working tree stay as they were. Whatever `validate`
would refuse is refused here first, by the same code, and a refusal writes nothing: no branch,
no grant file, no secret. Passwords stay on this machine (secretstore); grants carry verifiers.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from . import credentials, gitrepo, secretstore
from .clicommon import handled, repo_option
from .completion import complete_access, complete_grants, complete_people, complete_targets
from .errors import Problem, UserError, one_line
from .load import YAML_SUFFIXES, SourceFile, parse_flat
from .model import Grant, Policy, login_name
from .review import _may_ask_for_others
from .timeutil import format_duration, iso, parse_duration, parse_timestamp
from .validate import Context, RawGrant, check_grant, load_policy

if TYPE_CHECKING:  # the type only: gitrepo is the module that works with git
    from git import Repo

# The grant schema's patterns for names: a value that passes may name a file and a branch.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


# -- who is asking ---------------------------------------------------------------------------


def identify(repo: Path | Repo, policy: Policy, as_handle: str | None = None, *,
             target: str | None = None) -> str:
    """The handle of the person jitgrant acts for: `as_handle` when given, else the person
    whose people.<handle>.email is the git author email here. Acting for someone other than
    the git identity's person needs that person's GitHub login in the target's
    requesters_for_others (so without a target it is refused). When the git identity matches
    nobody, `as_handle` is taken at its word: the pull request's author check is the wall.
    `repo` is the repository's folder or an open repository."""
    if isinstance(repo, Path):
        repo = gitrepo.open_repo(repo)
    me = whoami(repo, policy)
    if as_handle is None:
        return me or _unknown_me(repo)
    if as_handle not in policy.people:
        raise UserError(f"--as {as_handle!r}: no such person in policies/ (people.<handle>)")
    check_may_act(policy, me, as_handle, target)
    return as_handle


def whoami(repo: Repo, policy: Policy) -> str | None:
    """The handle whose email is the git author email here (case-insensitive), or None."""
    email = gitrepo.author_email(repo)
    if not email:
        return None
    found = sorted(h for h, p in policy.people.items()
                   if p.email and p.email.lower() == email.lower())
    if len(found) > 1:
        raise UserError(f"your git email {email!r} belongs to {', '.join(found)} in policies/: "
                        "pass --as HANDLE")
    return found[0] if found else None


def _unknown_me(repo: Repo) -> str:
    email = gitrepo.author_email(repo)
    what = f"your git email {email!r} is nobody's" if email else "git has no user.email here" \
        ", so it matches no"
    raise UserError(f"who are you? {what} people.<handle>.email in policies/: set git config "
                    "user.email to it, or pass --as HANDLE")


def check_may_act(policy: Policy, me: str | None, grantee: str, target: str | None) -> None:
    """Refuse acting for someone else unless review.py's rule would let the pull request
    through: `me`'s GitHub login listed in the target's requesters_for_others. Teams cannot
    be looked up here, so a right that comes only from a team is refused locally."""
    if me is None or me == grantee:
        return
    github = policy.people[me].github
    if github and target and _may_ask_for_others(policy, target, github, ()):
        return
    who = f"@{github}" if github else "no GitHub login (people.<handle>.github)"
    where = f"targets.{target}.requesters_for_others" if target else "a target's " \
        "requesters_for_others"
    raise UserError(f"{me} may not ask for {grantee}: {me} has {who}, which is not in {where} "
                    "(team membership cannot be checked locally)")


# -- the repository at HEAD ------------------------------------------------------------------


@dataclass(frozen=True)
class _Head:
    """A clean access repository at HEAD, with its policies read from HEAD."""

    repo: Repo
    commit: str
    policy: Policy


def _open_clean(repo_path: Path) -> _Head:
    repo = gitrepo.open_repo(repo_path)
    if repo.bare:
        raise UserError(f"{repo_path}: a bare repository: run this in a clone with a working "
                        "tree")
    try:
        commit = gitrepo.resolve(repo, "HEAD")
    except UserError:
        raise UserError(f"{repo_path}: the repository has no commit yet") from None
    dirty = gitrepo.uncommitted(repo, ("policies", "grants"))
    if dirty:
        more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
        raise UserError(f"uncommitted changes ({one_line(', '.join(dirty[:3]))}{more}): commit "
                        "or stash them first; the new branch starts from HEAD")
    problems: list[Problem] = []
    policy = load_policy(gitrepo.read_tree(repo, commit, ["policies"]), problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        raise UserError(f"the policies at HEAD are invalid ({errors[0]}{more}); fix them first")
    return _Head(repo, commit, policy)


def _source(head: _Head, rel: str) -> SourceFile | None:
    return next((f for f in gitrepo.read_tree(head.repo, head.commit, [rel]) if f.path == rel),
                None)


def grant_path(repo_path: Path, arg: str) -> str:
    """GRANT as given (absolute, or relative to the repository) -> grants/<target>/<file>."""
    root = repo_path.resolve()
    given = Path(arg)
    full = given if given.is_absolute() else root / given
    full = full.parent.resolve() / full.name  # folders resolved; the file itself not followed
    try:
        rel = full.relative_to(root).as_posix()
    except ValueError:
        raise UserError(f"{arg!r} is not inside the repository {root}") from None
    parts = rel.split("/")
    if len(parts) != 3 or parts[0] != "grants" or not rel.endswith(YAML_SUFFIXES):
        raise UserError(f"{arg!r} is not a grant file (grants/<target>/<name>.yaml)")
    return rel


def _read_grant(head: _Head, rel: str, now: datetime) -> Grant:
    """The valid grant file at HEAD; its lifetime is not checked again (that was its commit's
    business, and it may have expired since)."""
    source = _source(head, rel)
    if source is None:
        raise UserError(f"{rel}: no such grant file at HEAD")
    problems: list[Problem] = []
    ctx = Context(now=now, unknown_origin=frozenset({rel}))
    grant, _ = check_grant(source, head.policy, ctx, problems)
    errors = [p for p in problems if p.severity == "error"]
    if grant is None or errors:
        raise UserError(f"{rel} is not a valid grant: {errors[0] if errors else 'unreadable'}")
    return grant


# -- the would-be grant ----------------------------------------------------------------------


def _verifier(engine: str | None, password: str) -> str | None:
    if engine == "postgres":
        return credentials.scram_sha256_verifier(password, 4096)
    if engine == "mysql":
        return credentials.mysql_native_verifier(password)
    return None  # unknown target: validation refuses it


def _grant_fields(grantee: str, target: str, access: str, starts: datetime | None,
                  expires: datetime, reason: str, ticket: str | None,
                  verifier: str | None, sealed: bool = False,
                  extends: str | None = None) -> dict[str, str]:
    fields = {"grantee": grantee, "target": target, "access": access}
    if starts is not None:
        fields["starts"] = iso(starts) or ""
    fields.update({"expires": iso(expires) or "", "reason": reason})
    if ticket is not None:
        fields["ticket"] = ticket
    if verifier is not None:
        fields["password_verifier"] = verifier
    if sealed:  # apply makes the password and seals it to the grantee's keys (sealing.py)
        fields["delivery"] = "sealed"
    if extends is not None:
        fields["extends"] = extends
    return fields


def grant_text(fields: dict[str, str]) -> bytes:
    """Flat `key: value` lines as in the README's examples where YAML reads the value back as
    the same text; elsewhere (quotes, newlines, a leading `@`...) the YAML library quotes it."""
    lines = []
    for key, value in fields.items():
        line = f"{key}: {value}"
        doc = parse_flat("-", line)
        if doc is None or doc.data != {key: value}:
            line = yaml.safe_dump({key: value}, allow_unicode=True, width=1 << 16).rstrip("\n")
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def _validated(head: _Head, path: str, content: bytes, now: datetime, doing: str) -> Grant:
    """The grant as `validate --base` would judge it in the pull request: new, committed now."""
    problems: list[Problem] = []
    ctx = Context(now=now, changed=frozenset({path}))
    grant, _ = check_grant(SourceFile(path, content), head.policy, ctx, problems)
    errors = [p.message for p in problems if p.severity == "error"]
    if grant is None or errors:
        raise UserError(one_line(f"{doing} would not validate: {'; '.join(errors)}"))
    return grant


def _end(start: datetime, duration: timedelta) -> datetime:
    try:
        return start + duration
    except OverflowError:
        raise UserError(f"{format_duration(duration)} after {iso(start)} is past the year 9999: "
                        "ask for less time") from None


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


# -- the branch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    """What a command made: one commit on a new branch, and what to tell the user."""

    branch: str
    commit: str
    title: str
    body: str
    lines: tuple[str, ...]
    secret: Path | None = None
    notes: tuple[str, ...] = ()
    # The grant file the commit adds (or, for revoke, removes), for --format json.
    grant: Mapping[str, str | None] = field(default_factory=dict)


def _about(path: str, grantee: object, target: object, access: object,
           starts: datetime | None, expires: datetime | None) -> dict[str, str | None]:
    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return {"file": path, "grantee": text(grantee), "target": text(target),
            "access": text(access), "starts": iso(starts), "expires": iso(expires)}


def _branch(owner: str, names: tuple[str, ...], now: datetime, suffix: str = "") -> str:
    """access/<owner>/<names>-<UTC time><suffix>, the names folded to [a-z0-9._-]: a branch
    name is printed in commands to copy, and git allows `$(...)` and `;` in one."""
    return f"access/{_fold(owner)}/{'-'.join(map(_fold, names))}-{_stamp(now)}{suffix}"


def _fold(part: str) -> str:
    safe = re.sub(r"[^a-z0-9._-]", "-", part.lower())
    return re.sub(r"\.{2,}", ".", safe).strip(".") or "-"


def _commit(head: _Head, branch: str, changes: dict[str, bytes | None], title: str,
            body: str) -> str:
    if not gitrepo.valid_branch_name(head.repo, branch):
        raise UserError(f"{branch!r} cannot name a git branch")
    if gitrepo.branch_exists(head.repo, branch):
        raise UserError(f"the branch {branch} exists already: delete it or wait a second")
    for path, content in changes.items():
        if content is not None and _source(head, path) is not None:
            raise UserError(f"{path} exists already at HEAD: wait a second and try again")
    return gitrepo.commit_to_new_branch(head.repo, branch, head.commit, changes,
                                        f"{title}\n\n{body}\n")


def _body(reason: str, ticket: str | None, made_by: str) -> str:
    return reason + (f"\n\nTicket: {ticket}" if ticket else "") + f"\n\nMade by {made_by}."


# -- request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """What `jitgrant request` was asked for."""

    target: str
    access: str
    duration: timedelta
    reason: str
    starts: datetime | None = None
    ticket: str | None = None
    as_handle: str | None = None
    sealed: bool = False  # delivery: sealed, no password made here
    github_actor: str | None = None  # the requester, by GitHub login (a workflow's actor)


def request(repo_path: Path, ask: Ask, now: datetime) -> Made:
    """Validate the would-be grant, commit it on a new branch, then store the password. A
    request for someone else carries no password: nobody may hold the password of a login
    the audit attributes to another person (the grantee gives it one with `password`)."""
    head = _open_clean(repo_path)
    me = actor_person(head.policy, ask.github_actor, ask.sealed) \
        if ask.github_actor is not None else whoami(head.repo, head.policy)
    grantee = ask.as_handle or me or _unknown_me(head.repo)
    # (when git knows nobody, --as is taken at its word, and the pull request's author check
    # refuses a verifier for anyone but its author)
    for_other = me is not None and me != grantee
    if for_other and not ask.sealed:
        _no_password_possible(head, ask, me or "", grantee)
    password = None if for_other or ask.sealed else credentials.new_password()
    path, content, grant = _requested_grant(head, ask, grantee, password, now)
    check_may_act(head.policy, me, grantee, ask.target)
    return _commit_request(head, grant, path, content, password, now)


def actor_person(policy: Policy, actor: str, sealed: bool) -> str:
    """The person whose people.<handle>.github is `actor` (GitHub logins ignore case); a
    workflow's actor nobody maps to is refused, and so is a request from a runner that would
    leave a password on it."""
    if not sealed:
        raise UserError("--github-actor needs --sealed: a password made here would stay on "
                        "this machine, not with the person asking")
    found = sorted(h for h, p in policy.people.items()
                   if p.github and p.github.lower() == actor.lower())
    if len(found) != 1:
        what = "nobody's" if not found else f"shared by {', '.join(found)}"
        raise UserError(f"the GitHub login {actor!r} is {what} people.<handle>.github in "
                        "policies/: no request is made for it")
    return found[0]


def _no_password_possible(head: _Head, ask: Ask, me: str, grantee: str) -> None:
    """A MySQL account without a password would accept an empty one, so a mysql grant needs a
    verifier, which only the grantee may make: there the grantee must ask."""
    target = head.policy.targets.get(ask.target)
    if target is not None and target.engine == "mysql":
        again = shlex.join(["jitgrant", "request", ask.target, ask.access, "--for",
                            format_duration(ask.duration), "--reason", ask.reason])
        raise UserError(f"{me} cannot ask for {grantee} on the mysql target {ask.target}: its "
                        f"account needs a password from the start, and only {grantee} may "
                        f"hold it; {grantee} asks: {again}")


def _requested_grant(head: _Head, ask: Ask, grantee: str, password: str | None,
                     now: datetime) -> tuple[str, bytes, Grant]:
    target = head.policy.targets.get(ask.target)
    expires = _end(ask.starts or now, ask.duration)
    verifier = None if password is None else _verifier(target.engine if target else None,
                                                       password)
    fields = _grant_fields(grantee, ask.target, ask.access, ask.starts, expires, ask.reason,
                           ask.ticket, verifier, sealed=ask.sealed)
    path = f"grants/{ask.target}/{grantee}-{ask.access}-{_stamp(now)}.yaml"
    content = grant_text(fields)
    return path, content, _validated(head, path, content, now, "the grant")


def _commit_request(head: _Head, grant: Grant, path: str, content: bytes,
                    password: str | None, now: datetime, suffix: str = "",
                    title: str | None = None, made_by: str = "jitgrant request") -> Made:
    """Commit the grant on a new branch and store its password (None: it carries none)."""
    target = head.policy.targets[grant.target]
    login = login_name(target.role_prefix, grant.grantee, grant.access, target.engine)
    branch = _branch(grant.grantee, (grant.target, grant.access), now, suffix)
    title = title or f"Request {grant.access} on {grant.target} for {grant.grantee} until " \
        f"{iso(grant.expires)}"
    body = _body(grant.reason, grant.ticket, made_by)
    lines = (f"{path}: {grant.access} on {grant.target} for {grant.grantee}, "
             f"{_window(grant, now)}",)
    about = _about(path, grant.grantee, grant.target, grant.access, grant.starts,
                   grant.expires)
    if password is None:
        sha = _commit(head, branch, {path: content}, title, body)
        notes = _sealed_notes(grant, login) if grant.delivery == "sealed" else \
            _no_password_notes(grant, login)
        return Made(branch, sha, title, body, lines, notes=notes, grant=about)
    secretstore.check(grant.target, login)  # a store it would refuse: refused before the branch
    replaced = secretstore.secret_path(grant.target, login).exists()
    sha = _commit(head, branch, {path: content}, title, body)
    secret = _save_or_undo(head, branch, sha, grant.target, login, password)
    notes = (f"note: this replaced the password stored for {login}; the server takes the new "
             "one when this grant is applied and is the one expiring last (to keep the current "
             "password, use `jitgrant extend` instead)",) if replaced else ()
    return Made(branch, sha, title, body, lines, secret, notes, about)


def _sealed_notes(grant: Grant, login: str) -> tuple[str, ...]:
    return (f"note: sealed delivery: no password was made here; once merged, apply makes the "
            f"password of {login} and commits it sealed to people.{grant.grantee}.keys; "
            f"{grant.grantee} then runs "
            f"{shlex.join(['jitgrant', 'connect', grant.target, grant.access])} "
            "--identity ~/.ssh/KEY",)


def _no_password_notes(grant: Grant, login: str) -> tuple[str, ...]:
    return (f"note: this grant carries no password: only {grant.grantee} may hold the password "
            f"of {login}. Once merged, the login exists without one (no password logs in); "
            f"{grant.grantee} then gives it one, in a pull request of their own: "
            f"{shlex.join(['jitgrant', 'password', grant.path])}",)


def _save_or_undo(head: _Head, branch: str, sha: str, target: str, login: str,
                  password: str) -> Path:
    """The branch is made before the password is stored, so that a branch that could not be
    made never overwrites a password still in use; a password that cannot be stored takes
    its branch back."""
    try:
        return secretstore.save(target, login, password)
    except BaseException:
        gitrepo.delete_branch(head.repo, branch, sha)
        raise


def _window(grant: Grant, now: datetime) -> str:
    start = grant.starts if grant.starts and grant.starts > now else None
    begin = f"from {iso(start)} " if start else ""
    length = format_duration(grant.expires - (start or now))
    return f"{begin}until {iso(grant.expires)} ({length})"


# -- extend ----------------------------------------------------------------------------------


def extend(repo_path: Path, grant_arg: str, duration: timedelta, reason: str | None,
           now: datetime, as_handle: str | None = None) -> Made:
    """A new grant for the same login, overlapping the old one, with the same verifier: the
    password and the open sessions carry on. It expires `duration` after the old expiry, and
    starts when the old one does if that is still to come. A grant that has expired is not
    extended: its password died with it, and a new request makes a new one. The verifier is
    always the old grant's (the grantee's, or none), never one of whoever runs this."""
    head = _open_clean(repo_path)
    old = _read_grant(head, grant_path(repo_path, grant_arg), now)
    _check_as(head.policy, as_handle, old.path, old.grantee)
    if old.expires <= now:
        again = shlex.join(["jitgrant", "request", old.target, old.access, "--for",
                            "DURATION", "--reason", "TEXT"])
        raise UserError(f"{old.path} expired at {iso(old.expires)}: its password died with "
                        f"it; ask again with a new one: {again}")
    expires = _end(old.expires, duration)
    starts = old.starts if old.starts and old.starts > now else None
    _check_extension_fits(head.policy, old, starts or now, expires)
    sealed = old.delivery == "sealed"
    fields = _grant_fields(old.grantee, old.target, old.access, starts, expires,
                           reason or old.reason, old.ticket, old.password_verifier,
                           sealed=sealed, extends=old.path if sealed else None)
    # Its own suffix: told apart from requests in the folder, and never the same name as a
    # request made in the same second.
    path = f"grants/{old.target}/{old.grantee}-{old.access}-{_stamp(now)}-extend.yaml"
    grant = _validated(head, path, grant_text(fields), now,
                       f"the extension until {iso(expires)}")
    check_may_act(head.policy, whoami(head.repo, head.policy), old.grantee, old.target)
    branch = _branch(old.grantee, (old.target, old.access), now, "-extend")
    title = (f"Extend {old.access} on {old.target} for {old.grantee} until {iso(expires)}")
    body = _body(grant.reason, grant.ticket, f"jitgrant extend {old.path}")
    sha = _commit(head, branch, {path: grant_text(fields)}, title, body)
    lines = (f"{path}: {grant.access} on {grant.target} for {grant.grantee}, "
             f"{_window(grant, now)}, beside {old.path} (until {iso(old.expires)})",)
    return Made(branch, sha, title, body, lines, notes=() if sealed else _secret_note(head, old),
                grant=_about(path, grant.grantee, grant.target, grant.access, grant.starts,
                             grant.expires))


def _check_extension_fits(policy: Policy, old: Grant, begin: datetime,
                          expires: datetime) -> None:
    """Over the level's limit: say the most that can still be added, in whole minutes."""
    level = policy.access.get(old.access)
    if level is None or expires - begin <= level.max_duration:
        return  # within the limit, or validation explains what is wrong
    room = int((begin + level.max_duration - old.expires).total_seconds()) // 60
    most = (f"at most {format_duration(timedelta(minutes=room))} can be added "
            f"(--for {room}m)" if room > 0 else
            "nothing can be added: ask again when it is closer to its expiry")
    raise UserError(f"the extension until {iso(expires)} would last "
                    f"{format_duration(expires - begin)}, over the "
                    f"{format_duration(level.max_duration)} allowed for {old.access!r}: {most}")


def _check_as(policy: Policy, as_handle: str | None, path: str, grantee: object) -> None:
    """`--as` names the person the command is for, as on `request`: a person of policies/,
    and here the grant's grantee, so that a wrong file is not extended or revoked. Whether
    the runner may act for them is the command's own rule."""
    if as_handle is None:
        return
    if as_handle not in policy.people:
        raise UserError(f"--as {as_handle!r}: no such person in policies/ (people.<handle>)")
    if as_handle != grantee:
        raise UserError(f"--as {as_handle}: {path} is {grantee}'s grant, not {as_handle}'s")


def _secret_note(head: _Head, grant: Grant) -> tuple[str, ...]:
    target = head.policy.targets[grant.target]
    login = login_name(target.role_prefix, grant.grantee, grant.access, target.engine)
    if secretstore.secret_path(grant.target, login).exists():
        return ()
    return (f"note: no password for {login} on this machine; the extension keeps the password "
            "of the original request, wherever that was made",)


# -- password --------------------------------------------------------------------------------


def password(repo_path: Path, grant_arg: str, now: datetime) -> Made:
    """The grantee's own password for a grant's login: a grant for the same login with the
    same window and a verifier made here, the password kept here. Only the grantee may do
    this (and `validate --pr-author` refuses a verifier for anyone but the pull request's
    author): a request made for someone else carries no password. The login takes the
    verifier of the active grant expiring last that has one."""
    head = _open_clean(repo_path)
    old = _read_grant(head, grant_path(repo_path, grant_arg), now)
    me = whoami(head.repo, head.policy) or _unknown_me(head.repo)
    if me != old.grantee:
        raise UserError(f"{old.path} is {old.grantee}'s grant: only {old.grantee} may give its "
                        f"login a password (you are {me})")
    if old.expires <= now:
        raise UserError(f"{old.path} expired at {iso(old.expires)}: ask again with "
                        f"`jitgrant request {old.target} {old.access}`")
    secret = credentials.new_password()
    target = head.policy.targets[old.target]
    starts = old.starts if old.starts and old.starts > now else None
    fields = _grant_fields(old.grantee, old.target, old.access, starts, old.expires,
                           old.reason, old.ticket, _verifier(target.engine, secret))
    path = f"grants/{old.target}/{old.grantee}-{old.access}-{_stamp(now)}-password.yaml"
    content = grant_text(fields)
    grant = _validated(head, path, content, now, "the password grant")
    title = f"Set {old.grantee}'s password for {old.access} on {old.target} (beside {old.path})"
    return _commit_request(head, grant, path, content, secret, now, "-password", title,
                           f"jitgrant password {old.path}")


# -- revoke ----------------------------------------------------------------------------------


def revoke(repo_path: Path, grant_arg: str, reason: str | None, now: datetime,
           as_handle: str | None = None) -> Made:
    """A commit that deletes the grant file. Anyone may propose it: it only takes access
    away. The login goes at the first apply after the merge, unless another grant for the same
    (grantee, target, access) keeps it alive."""
    head = _open_clean(repo_path)
    rel = grant_path(repo_path, grant_arg)
    source = _source(head, rel)
    if source is None:
        raise UserError(f"{rel}: no such grant file at HEAD")
    raw = check_grant(source, head.policy, Context(now=now, unknown_origin=frozenset({rel})),
                      [])[1]
    _check_as(head.policy, as_handle, rel, raw.grantee)
    names = (raw.grantee, raw.target, raw.access)
    known = all(n is not None and _NAME.fullmatch(n) for n in names)
    who = f"{raw.access} on {raw.target} for {raw.grantee}" if known else rel
    branch = (_branch(str(raw.grantee), (str(raw.target), str(raw.access)), now, "-revoke")
              if known else _branch("revoke", (rel.split("/")[1],), now))
    title = f"Revoke {who}" + (f": remove {rel}" if known else "")
    body = (reason or f"{rel} is no longer needed.") + "\n\nMade by jitgrant revoke."
    sha = _commit(head, branch, {rel: None}, title, body)
    keep = _keeping_alive(head, raw, now) if known else []
    notes = tuple(f"note: {g.path} also grants {g.access} on {g.target} to {g.grantee} until "
                  f"{iso(g.expires)}: the login stays until then unless you revoke it too"
                  for g in keep)
    return Made(branch, sha, title, body, (f"{rel}: removed on this branch",), notes=notes,
                grant=_about(rel, raw.grantee, raw.target, raw.access, None, raw.expires))


def _keeping_alive(head: _Head, raw: RawGrant, now: datetime) -> list[Grant]:
    """The other grants at HEAD for the same login that have not expired."""
    sources = gitrepo.read_tree(head.repo, head.commit, [f"grants/{raw.target}"])
    ctx = Context(now=now, unknown_origin=frozenset(s.path for s in sources))
    found = []
    for source in sources:
        grant = check_grant(source, head.policy, ctx, [])[0]
        if grant and grant.path != raw.path and grant.expires > now and \
                (grant.grantee, grant.access) == (raw.grantee, raw.access):
            found.append(grant)
    return found


# -- the command line ------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UserError(f"--for {text!r}: {exc}") from None


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise UserError(f"--starts {text!r}: {exc}") from None


def _finish(repo_path: Path, made: Made, push: bool, fmt: str = "text",
            action: str = "request") -> None:
    """Say what was made and what comes next; push when asked. Never a password or verifier."""
    repo = gitrepo.open_repo(repo_path)
    if fmt == "json":
        if push:
            gitrepo.push_branch(repo, made.branch)
        click.echo(made_json(made, action, push))
        return
    for line in made.lines:
        click.echo(line)
    click.echo(f"branch {made.branch}: one commit {made.commit[:12]} on HEAD; your checkout "
               "is untouched")
    if made.secret is not None:
        click.echo(f"password: stored in {made.secret} (never in git)")
    for note in made.notes:
        click.echo(note, err=True)
    if push:
        gitrepo.push_branch(repo, made.branch)
        click.echo(f"pushed {made.branch} to origin")
    else:
        click.echo(f"next: {shlex.join(['git', 'push', '-u', 'origin', made.branch])}")
    base = gitrepo.current_branch(repo)
    click.echo(f"then: open a pull request from {made.branch}" + (f" into {base}" if base else ""))
    if shutil.which("gh"):
        args = ["gh", "pr", "create", "--head", made.branch, *(["--base", base] if base else []),
                "--title", made.title, "--body", made.body]
        click.echo("      " + shlex.join(args))


def made_json(made: Made, action: str, pushed: bool) -> str:
    """What `--format json` prints: the grant file, the branch and its commit, the notes."""
    return json.dumps({"action": action, **made.grant, "branch": made.branch,
                       "commit": made.commit, "pushed": pushed, "title": made.title,
                       "password_stored": None if made.secret is None else str(made.secret),
                       "notes": [n.removeprefix("note: ") for n in made.notes]},
                      indent=2, ensure_ascii=False)


_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="json: the grant file, branch and commit.")
_GRANT_ARG = click.argument("grant", metavar="GRANT", shell_complete=complete_grants)
_PUSH = click.option("--push", is_flag=True, help="Push the new branch to origin.")


# The request workflow (templates/ci/github) passes its form's inputs through these variables,
# never pasted into a script: each one stands for its argument or option.
@click.command("request")
@click.argument("target", shell_complete=complete_targets, envvar="JITGRANT_REQUEST_TARGET")
@click.argument("access", shell_complete=complete_access, envvar="JITGRANT_REQUEST_ACCESS")
@click.option("--for", "duration", required=True, metavar="DURATION",
              envvar="JITGRANT_REQUEST_FOR",
              help="How long: 30m, 2h, 1h30m, 1d or PT2H; at most the level's max_duration.")
@click.option("--reason", required=True, help="Why: shown to the approvers, kept in git.",
              envvar="JITGRANT_REQUEST_REASON")
@click.option("--starts", metavar="TIME", help="Begin then (RFC 3339 with a zone), not now.")
@click.option("--ticket", help="A ticket or incident id.", envvar="JITGRANT_REQUEST_TICKET")
@click.option("--as", "as_handle", metavar="HANDLE", shell_complete=complete_people,
              envvar="JITGRANT_REQUEST_AS",
              help="Ask for this person (needs requesters_for_others for someone else).")
@click.option("--sealed", is_flag=True,
              help="delivery: sealed: no password here; apply makes it and seals it to the "
                   "grantee's people.<handle>.keys.")
@click.option("--github-actor", metavar="LOGIN", envvar="JITGRANT_GITHUB_ACTOR",
              help="The requester is the person whose people.<handle>.github is LOGIN (a "
                   "workflow's github.actor); needs --sealed. Env: JITGRANT_GITHUB_ACTOR.")
@click.option("--open-pr", is_flag=True,
              help="With --push: open the pull request with GitHub's gh command.")
@_PUSH
@_FORMAT
@repo_option
@handled
def request_command(target: str, access: str, duration: str, reason: str, starts: str | None,
                    ticket: str | None, as_handle: str | None, push: bool, fmt: str,
                    repo: Path, sealed: bool, github_actor: str | None,
                    open_pr: bool) -> int:
    """Ask for access: a grant file on a new branch, the password kept on this machine."""
    if open_pr and not push:
        raise UserError("--open-pr needs --push: the pull request is opened from origin")
    ask = Ask(target, access, _duration(duration), reason, _timestamp(starts), ticket or None,
              as_handle or None, sealed, github_actor or None)
    made = request(repo, ask, _now())
    _finish(repo, made, push, fmt, "request")
    if open_pr:
        from .forge import open_pull_request

        base = gitrepo.current_branch(gitrepo.open_repo(repo))
        address = open_pull_request(made.branch, base, made.title, made.body)
        click.echo(f"pull request: {address}" if address else "pull request: opened",
                   err=fmt == "json")
    return 0


@click.command("extend")
@_GRANT_ARG
@click.option("--for", "duration", required=True, metavar="DURATION",
              help="How much longer, counted from the current expiry.")
@click.option("--reason", help="Why (default: the grant's reason).")
@click.option("--as", "as_handle", metavar="HANDLE", shell_complete=complete_people,
              help="For this person, the grant's grantee (needs requesters_for_others for "
                   "someone else).")
@_PUSH
@_FORMAT
@repo_option
@handled
def extend_command(grant: str, duration: str, reason: str | None, as_handle: str | None,
                   push: bool, fmt: str, repo: Path) -> int:
    """Extend a grant: an overlapping grant with the same password, on a new branch."""
    _finish(repo, extend(repo, grant, _duration(duration), reason, _now(), as_handle), push,
            fmt, "extend")
    return 0


@click.command("password")
@_GRANT_ARG
@_PUSH
@_FORMAT
@repo_option
@handled
def password_command(grant: str, push: bool, fmt: str, repo: Path) -> int:
    """Give your login of a grant a password of your own (a grant asked for you by someone
    else carries none): a grant beside it, on a new branch, the password kept here."""
    _finish(repo, password(repo, grant, _now()), push, fmt, "password")
    return 0


@click.command("revoke")
@_GRANT_ARG
@click.option("--reason", help="Why (goes into the commit message).")
@click.option("--as", "as_handle", metavar="HANDLE", shell_complete=complete_people,
              help="For this person, the grant's grantee (anyone may revoke).")
@_PUSH
@_FORMAT
@repo_option
@handled
def revoke_command(grant: str, reason: str | None, as_handle: str | None, push: bool,
                   fmt: str, repo: Path) -> int:
    """Give access back: a commit removing the grant file, on a new branch."""
    _finish(repo, revoke(repo, grant, reason, _now(), as_handle), push, fmt, "revoke")
    return 0
