"""The requester's side of a grant: `jitgrant status` (pending, scheduled, active, expired) and
`jitgrant connect` (a client logged in with the password from the local store).

Grants are read from the mainline (`--mainline REF`, else `main`, else `master`, else what
`origin/HEAD` points at, else HEAD unless HEAD is an `access/*` branch or a detached checkout of
one): a request that is not merged is not access. Every other local and remote-tracking branch
is compared with it; grant files a branch adds, changes or removes are its pending requests.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from . import gitrepo, requester, secretstore
from .clicommon import handled, repo_option
from .completion import (complete_access, complete_people, complete_targets, environment_option,
                         jobs_option, target_option)
from .dsn import DsnError, admin_dsn
from .engines import ENGINES
from .errors import ConfigError, UserError, one_line
from .jobs import DEFAULT_JOBS, bounded_map
from .load import SourceFile
from .model import ActualState, Grant, Policy, Target, login_name
from .overdue import DEFAULT_GRACE, GRACE_HELP, Overdue, overdue_in, parse_grace, summary
from .plan import desired_state
from .redact import redact
from .targets import select_in
from .timeutil import format_duration, iso, now_utc
from .validate import Context, RawGrant, Snapshot, build_snapshot

MAINLINE = ("main", "master")
EXPIRING_SOON = timedelta(hours=1)  # an active grant this close to its end is "expiring"
KEEP_EXPIRED = timedelta(days=7)  # older expired grants are counted, listed only with --all
STATE_ORDER = ("expiring", "active", "scheduled", "pending", "expired", "offboarded", "invalid")
CLIENTS = {"psql": "postgres", "pgcli": "postgres", "mysql": "mysql", "mariadb": "mysql"}
# What the child must not inherit, lest it connect somewhere other than the policy says: a
# service (file) overrides PGHOST and the others, PGHOSTADDR overrides PGHOST's address; for
# mysql, once jitgrant passes --host/--port, a socket or a host from the environment.
PG_REDIRECTS = ("PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR")
MYSQL_REDIRECTS = ("MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT")


# -- git: the mainline and the branches that would change it ---------------------------------
# Through the repository object gitrepo opens (gitrepo is the module that imports git).


@dataclass(frozen=True)
class Base:
    name: str  # the branch grants are read from ("HEAD" when that is what it is)
    sha: str


def mainline(repo: Any, explicit: str | None = None) -> Base:
    """The branch merged requests are on: `explicit` (--mainline) when given, else the local
    main, else master, else the branch origin/HEAD names, else HEAD, but never a request
    branch: reading one as the mainline would show its unmerged request as access."""
    if explicit:
        return Base(explicit, gitrepo.resolve(repo, explicit))
    for ref in [f"refs/heads/{name}" for name in MAINLINE] + [_origin_head(repo)]:
        sha = _sha(repo, ref) if ref else None
        if sha:
            return Base(ref.removeprefix("refs/heads/").removeprefix("refs/remotes/"), sha)
    current = gitrepo.current_branch(repo)
    if _is_request(current) or (current is None and _detached_on_request(repo)):
        on = f"the request branch {current}" if current else "a detached checkout of a " \
            "request branch"
        raise UserError(f"which branch is the mainline? there is no main, master or "
                        f"origin/HEAD here, and HEAD is {on}: pass --mainline BRANCH (the "
                        "branch requests are merged into)")
    return Base(current or "HEAD", gitrepo.resolve(repo, "HEAD"))


def _sha(repo: Any, ref: str) -> str | None:
    try:
        return gitrepo.resolve(repo, ref)
    except ConfigError:
        return None


def _origin_head(repo: Any) -> str:
    """refs/remotes/origin/<default branch>, as `git clone` records it, or ""."""
    return str(repo.git.symbolic_ref("-q", "refs/remotes/origin/HEAD",
                                     with_exceptions=False)).strip()


def _is_request(short: str | None, remote: bool = False) -> bool:
    """Is this short branch name (origin/access/x when `remote`) a request branch?"""
    if short is None:
        return False
    return (short.split("/", 1)[-1] if remote else short).startswith("access/")


def _detached_on_request(repo: Any) -> bool:
    """A detached HEAD is taken for the mainline only when a branch other than a request
    branch holds it: one that only access/* branches hold is a checkout of a request."""
    out = repo.git.for_each_ref("--contains", "HEAD", "--format=%(refname)%00%(symref)",
                                "refs/heads", "refs/remotes")
    for line in filter(None, str(out).splitlines()):
        ref, symref = line.split("\0")
        remote = ref.startswith("refs/remotes/")
        short = ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
        if not symref and not _is_request(short, remote):
            return False
    return True


def _branches(repo: Any, base: Base) -> list[tuple[str, str]]:
    """(short name, sha) of every local and remote-tracking branch but the mainline's own."""
    out = repo.git.for_each_ref("--format=%(refname)%00%(objectname)%00%(symref)",
                                "refs/heads", "refs/remotes")
    found = []
    for line in filter(None, str(out).splitlines()):
        ref, sha, symref = line.split("\0")
        short = ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
        mainline_copy = ref.startswith("refs/remotes/") and short.split("/", 1)[-1] == base.name
        if symref or short == base.name or mainline_copy or sha == base.sha:
            continue
        found.append((short, sha))
    return found


@dataclass(frozen=True)
class Change:
    path: str
    blob: str | None  # None: the branch removes the file
    symlink: bool = False


def _changes(repo: Any, base: Base, sha: str) -> list[Change]:
    """Grant files the branch changed since it left the mainline and that the mainline does
    not hold as the branch has them: a branch merged, even squashed or rebased, asks nothing;
    one with no history in common is ignored."""
    fork = str(repo.git.merge_base(base.sha, sha, with_exceptions=False)).strip()
    if not fork:
        return []
    out = str(repo.git.diff("--raw", "--no-abbrev", "--no-renames", "-z", fork, sha,
                            "--", "grants/"))
    tokens = out.split("\0")
    changes = []
    for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
        fields = meta.lstrip(":").split()
        if len(fields) < 5 or not path.endswith((".yaml", ".yml")):
            continue
        removed = fields[4].startswith("D")
        changes.append(Change(path, None if removed else fields[3], fields[1] == "120000"))
    on_base = _blobs(repo, base.sha, [c.path for c in changes])
    return [c for c in changes if on_base.get(c.path) != c.blob]


def _blobs(repo: Any, commit: str, paths: list[str]) -> dict[str, str]:
    """path -> blob sha at `commit`, for those of `paths` that exist there."""
    if not paths:
        return {}
    out = str(repo.git.ls_tree("-z", "--full-tree", commit, "--", *paths))
    found = {}
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        found[path] = meta.split()[2]
    return found


def behind(repo: Any, base: Base) -> list[str]:
    """Remote-tracking copies of the mainline that hold commits it lacks: grants merged there
    are not seen until a pull."""
    out = repo.git.for_each_ref("--format=%(refname:short)%00%(objectname)%00%(symref)",
                                "refs/remotes")
    stale = []
    for line in filter(None, str(out).splitlines()):
        short, sha, symref = line.split("\0")
        if symref or short.split("/", 1)[-1] != base.name or sha == base.sha:
            continue
        if str(repo.git.rev_list("--count", f"{base.sha}..{sha}")).strip() != "0":
            stale.append(short)
    return stale


# -- what status shows -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    state: str  # one of STATE_ORDER
    path: str
    grantee: str | None
    target: str | None
    access: str | None
    expires: datetime | None
    starts: datetime | None = None
    login: str | None = None
    branch: str | None = None  # pending: the branch that asks for it
    change: str | None = None  # pending: new | change | removal
    problem: str | None = None  # invalid: the first error of the file
    login_exists: bool | None = None  # None: not known (no DSN, or the server was not read)
    login_locked: bool | None = None
    sessions_open: int | None = None  # the login's sessions when the server was read


def _login(policy: Policy, grantee: str | None, target: str | None,
           access: str | None) -> str | None:
    t = policy.targets.get(target or "")
    if t is None or not grantee or not access:
        return None
    return login_name(t.role_prefix, grantee, access, t.engine)


def time_state(grant: Grant, now: datetime) -> str:
    if grant.starts is not None and now < grant.starts:
        return "scheduled"
    if grant.expires <= now:
        return "expired"
    return "expiring" if grant.expires - now <= EXPIRING_SOON else "active"


def _grant_row(grant: Grant, state: str, policy: Policy, **extra: Any) -> Row:
    return Row(state, grant.path, grant.grantee, grant.target, grant.access, grant.expires,
               grant.starts, _login(policy, grant.grantee, grant.target, grant.access), **extra)


def _raw_row(raw: RawGrant, state: str, policy: Policy, snapshot: Snapshot,
             **extra: Any) -> Row:
    problem = next((p.message for p in snapshot.errors if p.path == raw.path), None)
    return Row(state, raw.path, raw.grantee, raw.target, raw.access, raw.expires,
               login=_login(policy, raw.grantee, raw.target, raw.access),
               problem=extra.pop("problem", problem), **extra)


def mainline_rows(snapshot: Snapshot, now: datetime) -> list[Row]:
    policy = snapshot.policy
    rows = [_grant_row(g, time_state(g, now), policy) for g in snapshot.grants]
    rows += [_grant_row(g, "offboarded", policy) for g in snapshot.inactive]
    rows += [_raw_row(r, "invalid", policy, snapshot) for r in snapshot.invalid_grants]
    return rows


def pending_rows(repo: Any, base: Base, snapshot: Snapshot, now: datetime) -> list[Row]:
    """One row per grant file that a branch adds, changes or removes (a file on several
    branches, such as access/x and origin/access/x, once)."""
    rows: list[Row] = []
    seen: set[tuple[str, str | None]] = set()
    for branch, sha in _branches(repo, base):
        changes = [c for c in _changes(repo, base, sha) if (c.path, c.blob) not in seen]
        seen.update((c.path, c.blob) for c in changes)
        if changes:
            rows += _branch_rows(repo, branch, sha, changes, snapshot, now)
    return rows


def _branch_rows(repo: Any, branch: str, sha: str, changes: list[Change], snapshot: Snapshot,
                 now: datetime) -> list[Row]:
    removed = [c.path for c in changes if c.blob is None]
    rows = [_removal_row(snapshot, path, branch) for path in removed]
    written = [c for c in changes if c.blob is not None]
    if not written:
        return rows
    read = {s.path: s for s in gitrepo.read_blobs(
        repo, [(c.path, c.blob) for c in written if c.blob and not c.symlink])}
    sources = [SourceFile(c.path, None, c.blob, "a symlink; jitgrant status does not follow it")
               if c.symlink else read[c.path] for c in written]
    policies = gitrepo.read_tree(repo, sha, ["policies"])
    ctx = Context(now=now, changed=frozenset(c.path for c in written))
    on_branch = build_snapshot(policies, sources, ctx, sha)
    pol = on_branch.policy
    for grant in (*on_branch.grants, *on_branch.inactive):
        kind = "change" if snapshot.grant_at(grant.path) else "new"
        problem = next((p.message for p in on_branch.errors if p.path == grant.path), None)
        rows.append(_grant_row(grant, "pending", pol, branch=branch, change=kind,
                               problem=problem))
    for raw in on_branch.invalid_grants:
        kind = "change" if snapshot.grant_at(raw.path) else "new"
        rows.append(_raw_row(raw, "pending", pol, on_branch, branch=branch, change=kind))
    return rows


def _removal_row(snapshot: Snapshot, path: str, branch: str) -> Row:
    was = snapshot.grant_at(path)
    if isinstance(was, Grant):
        return _grant_row(was, "pending", snapshot.policy, branch=branch, change="removal")
    raw = was if isinstance(was, RawGrant) else RawGrant(path, None, None, None, None)
    return _raw_row(raw, "pending", snapshot.policy, snapshot, branch=branch, change="removal",
                    problem=None)


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(rows, key=lambda r: (STATE_ORDER.index(r.state), r.expires or far, r.path,
                                       r.branch or ""))


# -- does the login exist? one catalog read per target ---------------------------------------


def check_logins(rows: list[Row], policy: Policy, env: Mapping[str, str],
                 on_read: Callable[[Target, ActualState], None] | None = None,
                 jobs: int = DEFAULT_JOBS) -> tuple[list[Row], list[str]]:
    """Fill login_exists from each target whose DSN can be had, `jobs` targets at a time (one
    connection each); a target that cannot be read is a note, never a failure.
    `on_read(target, actual)`: what else to learn from each catalog (called in turn, not from
    the workers)."""
    wanted = sorted({r.target for r in rows if r.login and r.target and r.target in policy.targets})
    targets = [policy.targets[name] for name in wanted]
    read = bounded_map(targets, lambda target: _logins_or_note(target, env), jobs)
    found: dict[str, dict[str, tuple[bool, int]]] = {}  # target -> login -> (locked, sessions)
    notes: list[str] = []
    for target, (actual, note) in zip(targets, read, strict=True):
        if note is not None:
            notes.append(note)
        if actual is None:
            continue
        found[target.name] = {name: (role.locked or not role.can_login, _open(actual, name))
                              for name, role in actual.roles.items()}
        if on_read is not None:
            on_read(target, actual)
    return [_with_login(r, found) for r in rows], notes


def _logins_or_note(target: Target, env: Mapping[str, str]
                    ) -> tuple[ActualState | None, str | None]:
    """The target's catalog, or a note why it could not be read (none when it has no DSN)."""
    try:
        dsn = admin_dsn(target, env)  # remembered: clicommon's last defence masks it too
    except DsnError as exc:
        return None, None if exc.missing else f"{target.name}: could not check the logins: {exc}"
    try:
        return _read_logins(target, dsn), None
    except UserError as exc:
        return None, redact(f"{target.name}: could not check the logins: {exc}")


def _read_logins(target: Target, dsn: str) -> ActualState:
    engine = ENGINES.get(target.engine)
    if engine is None:
        raise UserError(f"engine {target.engine!r} is not available")
    session = engine.connect(target, dsn)
    try:
        actual = session.inspect(frozenset())
    finally:
        session.close()
    return actual


def _open(actual: ActualState, login: str) -> int:
    found = actual.usage.get(login)
    return found.sessions_open if found is not None else 0


def _with_login(row: Row, found: Mapping[str, Mapping[str, tuple[bool, int]]]) -> Row:
    on_server = found.get(row.target or "")
    if on_server is None or row.login is None:
        return row
    there = on_server.get(row.login)
    return replace(row, login_exists=there is not None,
                   login_locked=None if there is None else there[0],
                   sessions_open=None if there is None else there[1])


# -- who is "me" -----------------------------------------------------------------------------


def identify(repo: Any, policy: Policy, as_handle: str | None) -> str:
    """Whose grants: `--as HANDLE`, else requester.identify (the git author email in people).
    Looking and connecting act for nobody, so --as needs no requesters_for_others here: the
    password store on this machine is the wall."""
    if as_handle is None:
        return requester.identify(repo, policy)
    if as_handle not in policy.people:
        raise UserError(f"--as {as_handle!r}: no such person in policies/ (people.<handle>)")
    return as_handle


# -- jitgrant status -------------------------------------------------------------------------


@dataclass
class Status:
    base: Base
    now: datetime
    person: str | None
    rows: list[Row]
    notes: list[str]
    hidden_expired: int = 0
    overdue: list[Overdue] = field(default_factory=list)  # of the targets whose DSN is set


def build_status(repo_path: Path, now: datetime, me: bool, as_handle: str | None,
                 show_all: bool, env: Mapping[str, str],
                 mainline_ref: str | None = None, grace: timedelta = DEFAULT_GRACE,
                 only: Sequence[str] = (), environments: Sequence[str] = (),
                 jobs: int = DEFAULT_JOBS) -> Status:
    """The grants' rows (with --target/--environment, only those on the targets chosen),
    each with whether its login is on the server, read `jobs` targets at a time, and the
    revocations overdue there."""
    from .snapshot import read_snapshot

    repo = gitrepo.open_repo(repo_path)
    base = mainline(repo, mainline_ref)
    snapshot = read_snapshot(repo_path, base.sha, now)
    person = identify(repo, snapshot.policy, as_handle) if me or as_handle else None
    rows = mainline_rows(snapshot, now) + pending_rows(repo, base, snapshot, now)
    if person is not None:
        rows = [r for r in rows if r.grantee == person]
    if only or environments:
        chosen = set(select_in(snapshot.policy.targets, only, environments))
        rows = [r for r in rows if r.target in chosen]
    hidden = 0
    if not show_all:
        kept = [r for r in rows if not _old_expired(r, now)]
        hidden, rows = len(rows) - len(kept), kept
    overdue: list[Overdue] = []

    def count_overdue(target: Target, actual: ActualState) -> None:
        found = overdue_in(desired_state(snapshot, target, now), actual, now, grace)
        overdue.extend(o for o in found if person is None or o.grantee == person)

    rows, notes = check_logins(rows, snapshot.policy, env, count_overdue, jobs)
    notes = [f"{ref} has commits that {base.name} lacks: pull to see the grants merged there"
             for ref in behind(repo, base)] + notes
    return Status(base, now, person, sort_rows(rows), notes, hidden, overdue)


def _old_expired(row: Row, now: datetime) -> bool:
    return row.state in ("expired", "offboarded", "invalid") and row.expires is not None \
        and row.expires < now - KEEP_EXPIRED


def human(delta: timedelta) -> str:
    """format_duration to the minute (seconds only under a minute): 1h59m, not 1h59m58s."""
    if abs(delta) < timedelta(minutes=1):
        return format_duration(delta)
    return format_duration(timedelta(minutes=int(delta.total_seconds() // 60)))


def when(row: Row, now: datetime) -> str:
    if row.state == "pending":
        return f"{row.change} on {row.branch}"
    if row.state == "scheduled" and row.starts is not None:
        return f"starts in {human(row.starts - now)}"
    if row.expires is None:
        return "-"
    if row.state in ("active", "expiring"):
        return f"{human(row.expires - now)} left"
    if row.expires <= now:
        return f"ended {human(now - row.expires)} ago"
    return "-"


def _on_server(row: Row) -> str:
    if row.login_exists is None:
        return "-"
    if not row.login_exists:
        return "no"
    state = "locked" if row.login_locked else "yes"
    if not row.sessions_open:
        return state
    return f"{state}, in use ({row.sessions_open} session{'s' if row.sessions_open > 1 else ''})"


COLUMNS = ("STATE", "GRANTEE", "TARGET", "ACCESS", "EXPIRES", "WHEN", "LOGIN", "ON SERVER",
           "FILE")


def status_table(status: Status) -> str:
    cells = [list(COLUMNS)]
    for r in status.rows:
        cells.append([r.state, r.grantee or "?", r.target or "?", r.access or "?",
                      iso(r.expires) or "-", when(r, status.now), r.login or "-", _on_server(r),
                      r.path + (f"  ({r.problem})" if r.problem else "")])
    cells = [[one_line(c) for c in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def status_json(status: Status) -> str:
    def row(r: Row) -> dict[str, Any]:
        left = None
        if r.expires is not None and r.state in ("active", "expiring"):
            left = int((r.expires - status.now).total_seconds())
        return {"state": r.state, "grantee": r.grantee, "target": r.target, "access": r.access,
                "starts": iso(r.starts), "expires": iso(r.expires),
                "seconds_left": left,
                "login": r.login, "login_exists": r.login_exists, "login_locked": r.login_locked,
                "sessions_open": r.sessions_open,
                "file": r.path, "branch": r.branch, "change": r.change, "problem": r.problem}

    return json.dumps({"now": iso(status.now), "base": status.base.name,
                       "person": status.person, "grants": [row(r) for r in status.rows],
                       "hidden_expired": status.hidden_expired, "notes": status.notes,
                       "overdue": [o.as_dict() for o in status.overdue]},
                      indent=2, ensure_ascii=False)


_MAINLINE = click.option("--mainline", "mainline_ref", metavar="REF",
                         help="The branch requests are merged into (default: main, master, "
                              "origin/HEAD's branch, or HEAD unless it is a request branch).")


@click.command("status")
@repo_option
@_MAINLINE
@click.option("--me", is_flag=True, help="Only my grants (your git author email in people).")
@click.option("--as", "as_handle", metavar="HANDLE", shell_complete=complete_people,
              help="Only the grants of this person.")
@click.option("--all", "show_all", is_flag=True,
              help="Also grants that ended more than 7 days ago.")
@target_option("Only the grants on this target")
@environment_option()
@jobs_option()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--overdue-grace", default="15m", show_default=True, metavar="DURATION",
              help=GRACE_HELP)
@handled
def status_command(repo: Path, mainline_ref: str | None, me: bool, as_handle: str | None,
                   show_all: bool, only: tuple[str, ...], environments: tuple[str, ...],
                   jobs: int, fmt: str, overdue_grace: str) -> int:
    """Grants: pending on a branch, scheduled, active (time left), expiring, expired."""
    grace = parse_grace(overdue_grace)
    status = build_status(repo, now_utc(), me, as_handle, show_all, os.environ, mainline_ref,
                          grace, only, environments, jobs)
    if fmt == "json":
        click.echo(status_json(status))
        return 0
    if status.rows:
        click.echo(status_table(status))
    else:
        who = f" for {status.person}" if status.person else ""
        click.echo(f"no grants{who}")
    if status.hidden_expired:
        click.echo(f"({status.hidden_expired} grants that ended over 7 days ago not shown: "
                   "--all)", err=True)
    for note in status.notes:
        click.echo(f"note: {note}", err=True)
    for line in summary(status.overdue, status.now):
        click.echo(line)
    return 0


# -- jitgrant connect ------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    target: Target
    grant: Grant  # the current grant with the latest expiry
    login: str
    host: str | None
    port: int | None
    dbname: str | None
    sealed: str | None = field(default=None, repr=False)  # a sealed grant's opened password


def choose_grant(snapshot: Snapshot, person: str, target_name: str, access: str | None,
                 now: datetime, pending: Callable[[], Sequence[Row]]) -> Grant:
    """The person's current grant on the target (for `access`, or the only level they have
    now); otherwise a one-line reason: not yet, expired, not merged, none."""
    if target_name not in snapshot.policy.targets:
        raise UserError(f"unknown target {target_name!r}")
    who = snapshot.policy.people.get(person)
    if who is None or not who.active:
        raise UserError(f"{person} is not an active person in people: no access")
    mine = [g for g in snapshot.grants if g.grantee == person and g.target == target_name
            and (access is None or g.access == access)]
    current = [g for g in mine if g.is_current(now)]
    levels = sorted({g.access for g in current})
    if len(levels) > 1:
        raise UserError(f"you have several access levels on {target_name} now "
                        f"({', '.join(levels)}): name one")
    if current:
        return max(current, key=lambda g: g.expires)
    raise UserError(_no_access(snapshot, person, target_name, access, now, mine, pending))


def _no_access(snapshot: Snapshot, person: str, target: str, access: str | None,
               now: datetime, mine: list[Grant], pending: Callable[[], Sequence[Row]]) -> str:
    what = f"{target} {access}" if access else target
    later = sorted((g for g in mine if g.starts is not None and g.starts > now),
                   key=lambda g: g.starts or now)
    if later:
        starts = later[0].starts or now
        return (f"your grant for {what} is not active yet: it starts at {iso(starts)} "
                f"(in {human(starts - now)})")
    waiting = [r for r in pending() if r.grantee == person and r.target == target
               and (access is None or r.access == access) and r.change != "removal"]
    if waiting:
        return (f"your request for {what} is on branch {waiting[0].branch} and not merged "
                f"yet ({waiting[0].path})")
    invalid = [r for r in snapshot.invalid_grants if r.grantee == person and r.target == target
               and (access is None or r.access == access)]
    if invalid:
        problem = next((p for p in snapshot.errors if p.path == invalid[0].path), None)
        return f"your grant file is invalid, so it grants nothing: {problem or invalid[0].path}"
    if mine:
        ended = max(g.expires for g in mine)
        return (f"your grant for {what} expired at {iso(ended)} "
                f"({human(now - ended)} ago): request again with jitgrant request")
    return f"you have no grant for {what}: jitgrant request {target} ACCESS --for 2h --reason ..."


def build_connection(snapshot: Snapshot, grant: Grant, host: str | None,
                     port: int | None) -> Connection:
    target = snapshot.policy.targets[grant.target]
    login = login_name(target.role_prefix, grant.grantee, grant.access, target.engine)
    block = target.connect
    port_value = port if port is not None else block.get("port")
    return Connection(target, grant, login, host or block.get("host"),
                      int(port_value) if port_value is not None else None, block.get("dbname"))


def password_for(conn: Connection) -> str:
    if conn.sealed is not None:
        return conn.sealed
    password = secretstore.load(conn.target.name, conn.login)
    if password is None and conn.grant.password_verifier is None:
        raise UserError(f"{conn.grant.path} carries no password (as a request made for you by "
                        f"someone else does): give {conn.login} yours with `jitgrant password "
                        f"{conn.grant.path}`, and once that is merged and applied, connect")
    if password is None:
        where = secretstore.secret_path(conn.target.name, conn.login)
        raise UserError(f"no password for {conn.login} on this machine ({where}): it stays on "
                        "the machine that ran jitgrant request; request again from here")
    return password


def pick_client(engine: str, client: str | None) -> str:
    if client is not None:
        if CLIENTS[client] != engine:
            raise UserError(f"--client {client} is for {CLIENTS[client]} targets; this one is "
                            f"{engine}")
        return client
    if engine == "postgres":
        return "psql"
    return "mariadb" if shutil.which("mariadb") or not shutil.which("mysql") else "mysql"


def client_command(conn: Connection, client: str, extra: Sequence[str],
                   password: str) -> tuple[list[str], dict[str, str]]:
    """The client's argv and the child's whole environment. The password goes into the
    environment only (PGPASSWORD, MYSQL_PWD): argv is readable by every local user."""
    env = dict(os.environ)
    if CLIENTS[client] == "postgres":
        for name in PG_REDIRECTS:
            env.pop(name, None)
        env.update(_pg_env(conn, password))
        return [client, *extra], env
    if conn.host or conn.port is not None:
        for name in MYSQL_REDIRECTS:
            env.pop(name, None)
    env["MYSQL_PWD"] = password
    argv = [client, f"--user={conn.login}"]
    if conn.host:
        argv.append(f"--host={conn.host}")
    if conn.port is not None:
        argv.append(f"--port={conn.port}")
    if conn.dbname:
        argv.append(f"--database={conn.dbname}")
    return [*argv, *extra], env


def _pg_env(conn: Connection, password: str) -> dict[str, str]:
    values = {"PGHOST": conn.host, "PGPORT": None if conn.port is None else str(conn.port),
              "PGUSER": conn.login, "PGDATABASE": conn.dbname, "PGPASSWORD": password}
    return {k: v for k, v in values.items() if v is not None}


def print_env(conn: Connection, password: str) -> str:
    if conn.target.engine == "postgres":
        pairs = _pg_env(conn, password)
        lines = [f"export {k}={shlex.quote(v)}" for k, v in pairs.items()]
    else:
        values = {"MYSQL_HOST": conn.host, "MYSQL_TCP_PORT": None if conn.port is None
                  else str(conn.port), "MYSQL_PWD": password}
        lines = [f"export {k}={shlex.quote(v)}" for k, v in values.items() if v is not None]
        lines.append(f"# then: mariadb --user={shlex.quote(conn.login)}"
                     + (f" --database={shlex.quote(conn.dbname)}" if conn.dbname else ""))
    return "\n".join([_header(conn), *lines])


def pgpass_line(conn: Connection, password: str) -> str:
    """host:port:database:user:password, with : and \\ escaped as .pgpass wants."""
    if conn.target.engine != "postgres":
        raise UserError("--pgpass is for postgres targets; use --print-env")

    def esc(value: str | None) -> str:
        return "*" if value is None else value.replace("\\", "\\\\").replace(":", "\\:")

    port = None if conn.port is None else str(conn.port)
    fields = [esc(conn.host or "localhost"), esc(port or "5432"), esc(conn.dbname),
              esc(conn.login), esc(password)]
    return "\n".join([_header(conn), ":".join(fields)])


def _header(conn: Connection) -> str:
    return (f"# jitgrant: {conn.login} on {conn.target.name}, valid until "
            f"{iso(conn.grant.expires)}. This holds a password: keep it out of shared files.")


def _describe(conn: Connection, now: datetime) -> str:
    where = f"{conn.host or 'default host'}:{conn.port or 'default port'}"
    if conn.dbname:
        where += f"/{conn.dbname}"
    return (f"jitgrant: connecting to {conn.target.name} ({where}) as {conn.login}; the grant "
            f"ends at {iso(conn.grant.expires)} ({human(conn.grant.expires - now)} "
            "left)")


class _ClientArgs(click.Command):
    """Everything after `--` goes to the client untouched (click would hand it to ACCESS)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["jitgrant.client_args"] = tuple(args[cut + 1:])
            args = args[:cut]
        return super().parse_args(ctx, args)


@click.command("connect", cls=_ClientArgs)
@repo_option
@_MAINLINE
@click.argument("target", shell_complete=complete_targets)
@click.argument("access", required=False, shell_complete=complete_access)
@click.option("--client", type=click.Choice(sorted(CLIENTS)),
              help="Default: psql for postgres, mariadb (or mysql) for mysql.")
@click.option("--as", "as_handle", metavar="HANDLE", shell_complete=complete_people,
              help="Connect as this person's grant (default: your git author email).")
@click.option("--host", help="Instead of the target's connect.host (a tunnel, say).")
@click.option("--port", type=click.IntRange(1, 65535), help="Instead of connect.port.")
@click.option("--print-env", is_flag=True,
              help="Print shell export lines, password included, instead of connecting.")
@click.option("--pgpass", is_flag=True,
              help="Print a .pgpass line, password included, instead of connecting.")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path),
              help="A sealed grant: the SSH private key (or age identity file) to open its "
                   "password with (default ~/.ssh/id_ed25519, then ~/.ssh/id_rsa).")
@handled
def connect_command(repo: Path, mainline_ref: str | None, target: str, access: str | None,
                    client: str | None, as_handle: str | None, host: str | None,
                    port: int | None, print_env: bool, pgpass: bool,
                    identity: Path | None) -> int:
    """Start a client logged in as my active grant's login (extra client args after --)."""
    from .snapshot import read_snapshot

    now = now_utc()
    git_repo = gitrepo.open_repo(repo)
    base = mainline(git_repo, mainline_ref)
    snapshot = read_snapshot(repo, base.sha, now)
    person = identify(git_repo, snapshot.policy, as_handle)
    grant = choose_grant(snapshot, person, target, access, now,
                         lambda: pending_rows(git_repo, base, snapshot, now))
    conn = build_connection(snapshot, grant, host, port)
    if grant.delivery == "sealed":
        from .sealing import sealed_password

        opened = sealed_password(git_repo, base.sha, grant, conn.login, identity)
        conn = replace(conn, sealed=opened)
    if print_env or pgpass:
        return _print_secret(conn, pgpass)
    chosen = pick_client(conn.target.engine, client)
    path = shutil.which(chosen)
    if path is None:
        raise UserError(f"{chosen} is not installed (not on PATH): install it or choose "
                        "another with --client")
    extra = click.get_current_context().meta.get("jitgrant.client_args", ())
    argv, env = client_command(conn, chosen, extra, password_for(conn))
    click.echo(_describe(conn, now), err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, argv, env)  # the client's exit code is ours
    except OSError as exc:
        raise UserError(f"could not start {chosen}: {exc.strerror}") from None
    return 1  # not reached


def _print_secret(conn: Connection, pgpass: bool) -> int:
    if sys.stdout.isatty():
        raise UserError("this prints the password: redirect it to a file or to eval, not to a "
                        "terminal")
    password = password_for(conn)
    click.echo(pgpass_line(conn, password) if pgpass else print_env(conn, password))
    click.echo(f"warning: the output holds the password of {conn.login}; it works until "
               f"{iso(conn.grant.expires)}", err=True)
    return 0
