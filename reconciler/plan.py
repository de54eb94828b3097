"""The pure heart: desired state (from grants, at `now`) against actual state gives actions.

No I/O here: no database driver, no git, no clock. The same actions are rendered by `plan`,
run by `apply` and written to the audit, so a dry run is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType

from .errors import Problem
from .fastinit import fast_init
from .model import (ActualRole, ActualState, DesiredLogin, DesiredState, Grant, KnownLogin,
                    Target, login_name)
from .settings import unfit_settings
from .timeutil import NEG_INFINITY
from .validate import RawGrant, Snapshot

MARKER = "jitgrant:"  # role comments that start with this mark logins jitgrant created


@dataclass(frozen=True)
class Changes:
    """What an update must put back or change on an existing login."""

    attributes: bool = False
    valid_until: bool = False
    password: bool = False
    connection_limit: bool = False
    comment: bool = False
    reset_config: bool = False
    unlock: bool = False
    default_roles: bool = False
    revoke_privileges: bool = False
    backstop: bool = False
    grant_roles: tuple[str, ...] = ()
    revoke_roles: tuple[str, ...] = ()
    revoke_members: tuple[str, ...] = ()
    revoke_admin: tuple[str, ...] = ()
    drop_events: tuple[str, ...] = ()
    set_settings: tuple[tuple[str, str], ...] = ()  # (name, value) missing or different
    reset_settings: tuple[str, ...] = ()  # settings the login has and its level does not
    audit_add: bool = False  # MariaDB: put in server_audit_incl_users
    audit_remove: bool = False  # MariaDB: taken out of server_audit_incl_users

    def describe(self) -> list[str]:
        flags = [("attributes", "login attributes"), ("valid_until", "expiry"),
                 ("password", "password"), ("connection_limit", "connection limit"),
                 ("comment", "marker comment"), ("reset_config", "role settings"),
                 ("unlock", "account lock"), ("default_roles", "default roles"),
                 ("revoke_privileges", "direct privileges"), ("backstop", "expiry event")]
        out = [text for name, text in flags if getattr(self, name)]
        out += [f"grant {r}" for r in self.grant_roles]
        out += [f"revoke {r}" for r in self.revoke_roles]
        out += [f"remove member {r}" for r in self.revoke_members]
        out += [f"revoke admin option on {r}" for r in self.revoke_admin]
        out += [f"drop event {e}" for e in self.drop_events]
        out += [f"set {n} = {v}" for n, v in self.set_settings]
        out += [f"reset {n}" for n in self.reset_settings]
        out += ["add to server_audit_incl_users"] if self.audit_add else []
        out += ["remove from server_audit_incl_users"] if self.audit_remove else []
        return out

    def __bool__(self) -> bool:
        # Every field is a flag or a tuple: any truthy one is a change. (Called for every
        # login on every run, so no descriptions are built here.)
        return any(self.__dict__.values())


NO_CHANGES = Changes()
_CHANGE_FIELDS = tuple(f.name for f in fields(Changes))


@fast_init
@dataclass(frozen=True)
class Action:
    target: str
    kind: str  # create | update | revoke
    login: str
    cause: str  # granted | drift | expired | removed | offboarded | invalid | unapproved | unknown
    grantee: str | None = None
    access: str | None = None
    expires: datetime | None = None
    grant_files: tuple[str, ...] = ()
    changes: Changes = field(default_factory=Changes)
    desired: DesiredLogin | None = None
    actual: ActualRole | None = None
    # Revoke: why the role is locked out and stripped but not dropped (its objects would go to
    # a superuser); None when it is dropped.
    hold: str | None = None
    # Revoke, MySQL: False when an account left alone has the same user name, since
    # connections are told apart by user name only and its own must survive.
    kill_sessions: bool = True


@dataclass(frozen=True)
class TargetPlan:
    target: Target
    actions: tuple[Action, ...]
    problems: tuple[Problem, ...] = ()


# -- desired state ---------------------------------------------------------------------------


def desired_state(snapshot: Snapshot, target: Target, now: datetime,
                  refused: Mapping[str, str] | None = None) -> DesiredState:
    """The logins that should exist at `now`, and what is known of every other login that some
    grant file maps to (for the cause of its revocation). One pass over the grants.
    `refused`: grant files not approved as repository.require_approval asks (path -> why),
    left out like invalid ones."""
    refused = refused or {}
    by_login: dict[str, list[Grant]] = {}
    found: dict[str, list[tuple[str, str, datetime | None]]] = {}
    names: dict[str, tuple[str, str]] = {}
    vague: set[str] = set()  # offboarded only because the person is missing from people

    def add(grantee: str, access: str, path: str, cause: str, expires: datetime | None) -> str:
        name = login_name(target.role_prefix, grantee, access, target.engine)
        found.setdefault(name, []).append((path, cause, expires))
        names.setdefault(name, (grantee, access))
        return name

    for grant in snapshot.grants:
        if grant.target == target.name:
            cause = _time_cause(grant, now)
            if cause == "granted" and grant.path in refused:
                cause = "unapproved"
            name = add(grant.grantee, grant.access, grant.path, cause, grant.expires)
            if cause == "granted":
                by_login.setdefault(name, []).append(grant)
    for grant in snapshot.inactive:
        if grant.target == target.name:
            name = add(grant.grantee, grant.access, grant.path, "offboarded", grant.expires)
            if grant.grantee not in snapshot.policy.people:
                vague.add(name)
    for raw in _raw_for(snapshot.invalid_grants, target):
        add(str(raw.grantee), str(raw.access), raw.path, "invalid", raw.expires)
    logins = {name: _desired_login(snapshot, name, grants, target.engine)
              for name, grants in by_login.items()}
    known = {name: _known(names[name], entries, name not in vague)
             for name, entries in found.items()}
    levels = snapshot.policy.access
    return DesiredState(target, MappingProxyType(logins), MappingProxyType(known),
                        may_grant=snapshot.policy.valid, access_levels=frozenset(levels),
                        dangerous_levels=frozenset(n for n, lv in levels.items() if lv.dangerous),
                        with_settings=MappingProxyType(
                            {n: lv for n, lv in levels.items() if lv.settings}),
                        refused=MappingProxyType(dict(refused)))


def _desired_login(snapshot: Snapshot, name: str, grants: list[Grant],
                   engine: str) -> DesiredLogin:
    ordered: tuple[Grant, ...]
    if len(grants) == 1:  # the usual case, for every login on every run
        latest, ordered = grants[0], (grants[0],)
        verifier = latest.password_verifier
    else:
        latest = max(grants, key=lambda g: (g.expires, g.path))
        ordered = tuple(sorted(grants, key=lambda g: g.path))
        # A grant asked for by someone else carries no verifier: it must not take away the
        # password the grantee gave the login in a grant of their own.
        with_one = [g for g in grants if g.password_verifier is not None]
        verifier = max(with_one, key=lambda g: (g.expires, g.path)).password_verifier \
            if with_one else None
    level = snapshot.policy.access[latest.access]
    return DesiredLogin(name, latest.grantee, latest.access, latest.expires, level.roles,
                        level.connection_limit, verifier, ordered,
                        _login_settings(level.settings, engine),
                        engine == "mysql" and ("server_audit", "on") in level.settings)


def _login_settings(settings: tuple[tuple[str, str], ...], engine: str
                    ) -> tuple[tuple[str, str], ...]:
    """The settings the engine puts on the login. MySQL: an account limit of 0 is no limit,
    which is how the server reports an account without one; server_audit is not the
    account's (the engine keeps the login in the plugin's list)."""
    if engine != "mysql" or not settings:
        return settings
    return tuple((n, v) for n, v in settings if n != "server_audit" and v != "0")


def _raw_for(raws: Iterable[RawGrant], target: Target) -> Iterable[RawGrant]:
    for raw in raws:
        folder = raw.path.split("/")[1] if raw.path.count("/") == 2 else None
        if raw.grantee and raw.access and target.name in (raw.target, folder):
            yield raw


def _time_cause(grant: Grant, now: datetime) -> str:
    if grant.is_current(now):
        return "granted"
    return "expired" if grant.expires <= now else "removed"


def _known(who: tuple[str, str], entries: list[tuple[str, str, datetime | None]],
           definite: bool) -> KnownLogin:
    if len(entries) == 1:  # one grant file for this login: the usual case
        path, cause, expires = entries[0]
        return KnownLogin(who[0], who[1], cause, expires, (path,), definite)
    causes = {cause for _, cause, _ in entries}
    cause = next(c for c in ("granted", "offboarded", "invalid", "unapproved", "expired",
                             "removed")
                 if c in causes or c == "removed")
    expiries = [e for _, _, e in entries if e is not None]
    return KnownLogin(who[0], who[1], cause, max(expiries) if expiries else None,
                      tuple(sorted(path for path, _, _ in entries)), definite)


# -- the diff --------------------------------------------------------------------------------


def is_managed(role: ActualRole) -> bool:
    return (role.comment or "").startswith(MARKER)


def protection(role: ActualRole, target: Target, actual: ActualState,
               ours: bool = False) -> str | None:
    """Why a role must never be modified, or None. `ours`: a grant file maps to it. A login
    that is jitgrant's (ours, or marked) and was made a superuser or administrator is put
    back when the reconciler has the rights to; else it is left alone, and reported."""
    if not (role.user or role.name).startswith(target.role_prefix):
        # The engines only report the namespace; the plan does not rely on it.
        return f"it is outside the namespace {target.role_prefix!r}"
    if role.name == actual.admin:
        return "it is the reconciler's own role"
    if role.user and role.user == actual.admin_user:
        # MySQL matches connections by user name: killing this account's would kill ours.
        return "it shares its user name with the reconciler's account"
    if role.name.startswith("pg_"):
        return "pg_ roles belong to the server"
    if role.name in target.never_touch or (role.user and role.user in target.never_touch):
        return "it is listed in never_touch"
    if role.superuser and not ((ours or is_managed(role)) and actual.admin_is_superuser):
        if target.engine == "postgres":
            why = "it is a superuser"
        else:
            why = "it administers the server (SUPER, CREATE USER or GRANT OPTION on *.*)"
        return why + _cannot_repair(target) if ours or is_managed(role) else why
    other = marked_target(role) if is_managed(role) else None
    if other is not None and other != target.name:
        return f"it belongs to target {other}, which shares this server and role_prefix"
    return None


def _cannot_repair(target: Target) -> str:
    needs = ("a superuser reconciler" if target.engine == "postgres"
             else "CREATE USER, and SYSTEM_USER on MySQL 8")
    return f", and putting it back takes {needs}"


def diff(desired: DesiredState, actual: ActualState, now: datetime) -> TargetPlan:
    """The actions that take `actual` to `desired`; pure."""
    target = desired.target
    problems: list[Problem] = [Problem(path, 1, why) for path, why in
                               sorted(desired.refused.items())]
    actions: list[Action] = []
    unprotected = {}
    for name, role in sorted(actual.roles.items()):
        why = protection(role, target, actual, name in desired.logins or name in desired.known)
        if why is None:
            unprotected[name] = role
        elif is_managed(role) or name in desired.logins or name in desired.known:
            problems.append(_target_problem(target, f"login {name} is left alone: {why}"))
        elif _hidden_login(role, target, actual):
            problems.append(_target_problem(
                target, f"login {name} is left alone: {why}; it can log in, and no grant "
                        f"ends that", "warning"))
    refused = _refused(desired, actual)
    unfit = unfit_settings(desired, actual, problems)
    for name, want in sorted(desired.logins.items()):
        if name in refused:
            problems.extend(Problem(g.path, 1, refused[name]) for g in want.grants)
            continue
        if want.access in unfit:  # left as it is: neither made, changed nor revoked
            problems.extend(Problem(g.path, 1, unfit[want.access]) for g in want.grants)
            continue
        if name in actual.roles and name not in unprotected:
            continue
        action = _grant_action(target, want, unprotected.get(name), actual, desired, problems)
        if action is not None:
            actions.append(action)
    if target.expiry_backstop == "event" and not wants_backstop(target, actual) and actual.admin:
        problems.append(_target_problem(target, "expiry_backstop: event needs the event "
                                        "scheduler on and a database in the DSN; expiry is "
                                        "enforced by apply alone", "warning"))
    keep = (set(desired.logins) | (set() if desired.may_grant else _still_current(desired, now))
            ) - set(refused)
    by_user = _accounts_by_user(actual)
    unprotected_names = set(unprotected)  # once: a set per revocation made this quadratic
    for name, role in unprotected.items():
        if name not in keep:
            action = _revoke_action(target, role, desired, actual, by_user, unprotected_names,
                                    problems, refused)
            if not (action.hold and _stripped(role, actual)):  # else only its problem remains
                actions.append(action)
    problems += _grant_option_warnings(target, actual, actions)
    return TargetPlan(target, tuple(actions), tuple(problems))


def _refused(desired: DesiredState, actual: ActualState) -> dict[str, str]:
    """Logins whose access level would make them superuser-equivalent on this server without
    saying `dangerous: true`, with the problem to report. Such a login is not created, and one
    that exists is revoked: errors only take access away."""
    found = {}
    for name, want in desired.logins.items():
        bad = [r for r in want.roles if r in actual.dangerous_groups]
        if bad and want.access not in desired.dangerous_levels:
            why = "; ".join(f"{r} {actual.dangerous_groups[r]}" for r in bad)
            found[name] = (f"group role {why} on target {desired.target.name}: access level "
                           f"{want.access!r} needs `dangerous: true` to grant it; grant refused")
    return found


def _grant_option_warnings(target: Target, actual: ActualState,
                           actions: list[Action]) -> list[Problem]:
    """Grants made with a group role's GRANT OPTION are not the login's to take back: the
    server records the group as grantor (PostgreSQL) or keeps them after DROP USER (MySQL)."""
    out = [_target_problem(target, f"group role {role} holds GRANT OPTION on {_some(objects)}: "
                                   "its logins can grant access that outlives them; revoke "
                                   "the grant option", "warning")
           for role, objects in sorted(actual.grant_options.items())]
    out += [_target_problem(target, f"login {a.login} granted {_some(made)} with a GRANT "
                                    "OPTION; revoking the login leaves those grants in place",
                            "warning")
            for a in actions if a.kind == "revoke" and (made := actual.grants_made.get(a.login))]
    return out


def _some(items: tuple[str, ...], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _hidden_login(role: ActualRole, target: Target, actual: ActualState) -> bool:
    """A login in the namespace that jitgrant leaves alone (a superuser or administrator,
    never_touch) and that can log in: it looks like temporary access and is not, so it is
    shown even without a marker or a grant. The reconciler's own role is expected there, and
    pg_ roles belong to the server."""
    return (role.can_login and not role.locked and not role.is_role
            and (role.user or role.name).startswith(target.role_prefix)
            and role.name != actual.admin and not role.name.startswith("pg_"))


def _target_problem(target: Target, message: str, severity: str = "error") -> Problem:
    return Problem(target.path or "policies", target.line, f"target {target.name}: {message}",
                   severity)


def _still_current(desired: DesiredState, now: datetime) -> set[str]:
    """With invalid policies, logins whose grant file has not expired are left as they are,
    unless their person is explicitly inactive: nothing blocks a revocation that is due."""
    return {name for name, known in desired.known.items()
            if (known.expires is None or known.expires > now)
            and not (known.cause == "offboarded" and known.definite)}


def _grant_action(target: Target, want: DesiredLogin, have: ActualRole | None,
                  actual: ActualState, desired: DesiredState,
                  problems: list[Problem]) -> Action | None:
    missing = [r for r in want.roles if r not in actual.existing_groups]
    if missing:
        for grant in want.grants:
            problems.append(Problem(grant.path, 1, f"group role {', '.join(missing)} does not "
                                    f"exist on target {target.name}; grant skipped"))
        return None
    if target.engine == "mysql" and actual.flavor == "mariadb" and len(want.roles) > 1:
        for grant in want.grants:
            problems.append(Problem(grant.path, 1, f"MariaDB has one default role per account: "
                                    f"access level {want.access!r} must name one role (that "
                                    f"role can include others); grant skipped"))
        return None
    if not desired.may_grant:
        return None
    changes = NO_CHANGES if have is None else compare(target, want, have, actual)
    if have is not None and not changes:
        return None
    files = tuple(g.path for g in want.grants)
    common = dict(target=target.name, login=want.name, grantee=want.grantee,
                  access=want.access, expires=want.expires, grant_files=files, desired=want)
    if have is None:
        return Action(kind="create", cause="granted", **common)  # type: ignore[arg-type]
    cause = _update_cause(target, want, have, changes)
    return Action(kind="update", cause=cause, changes=changes, actual=have,
                  **common)  # type: ignore[arg-type]


def _update_cause(target: Target, want: DesiredLogin, have: ActualRole, changes: Changes) -> str:
    """`granted` when the grant changed since the last apply, `drift` when the login did.
    PostgreSQL keeps a fingerprint of the granted state in the role comment; MySQL accounts
    have no comment, so there only a moved expiry event counts as a change of grant."""
    if target.engine == "postgres":
        return "drift" if fingerprint_of(have) == want.fingerprint else "granted"
    return "granted" if changes.describe() == ["expiry event"] else "drift"


def fingerprint_of(role: ActualRole) -> str | None:
    comment = role.comment or ""
    return comment.rsplit("state ", 1)[-1] if is_managed(role) and "state " in comment else None


def marker_comment(want: DesiredLogin, target: str) -> str:
    """`jitgrant: <target>: <grantee> (<access>) state <fingerprint>`: whose login it is, for
    which target (two targets may share a server and a prefix), and what was granted."""
    return f"{MARKER} {target}: {want.grantee} ({want.access}) state {want.fingerprint}"


def marked_target(role: ActualRole) -> str | None:
    """The target named in a login's marker (None for the older marker without one)."""
    rest = (role.comment or "")[len(MARKER):].strip()
    head, sep, _ = rest.partition(": ")
    return head if sep and " " not in head else None


def marked_owner(role: ActualRole) -> tuple[str, str] | None:
    """(grantee, access) named in a login's marker: whose it was once its grant file is gone."""
    rest = (role.comment or "")[len(MARKER):].strip() if is_managed(role) else ""
    if marked_target(role) is not None:
        rest = rest.partition(": ")[2]
    who, sep, _ = rest.rpartition(" state ")
    grantee, _, access = who.partition(" (")
    if not sep or not access.endswith(")") or not grantee or " " in grantee:
        return None
    return grantee, access[:-1]


def compare(target: Target, want: DesiredLogin, have: ActualRole,
            actual: ActualState) -> Changes:
    """Every difference between a login as granted and as found."""
    postgres = target.engine == "postgres"
    to_set, to_reset = _setting_changes(want, have)
    bad_attrs = (not have.can_login or have.superuser or have.createdb or have.createrole
                 or have.replication or have.bypassrls or not have.inherit)
    wanted_roles = set(want.roles)
    backstop = not postgres and wants_backstop(target, actual)
    comment = postgres and have.comment != marker_comment(want, target.name)
    values = (  # in the order of Changes' fields
        bad_attrs,  # attributes
        postgres and have.valid_until != want.expires,  # valid_until
        _password_differs(want, have, comment),  # password
        have.connection_limit != want.connection_limit,  # connection_limit
        comment,  # comment
        # per-database settings, or (a role read without its settings) any setting at all
        bool(have.config_databases) or (have.has_config and not have.settings),
        not postgres and have.locked,  # unlock
        (not postgres and have.default_roles is not None  # default_roles
         and have.default_roles != _default_roles(want, actual)),
        not postgres and have.direct_privileges,  # revoke_privileges
        backstop and have.backstop_at != want.expires.replace(microsecond=0),  # backstop
        _sorted(wanted_roles - have.member_of),  # grant_roles
        _sorted(have.member_of - wanted_roles),  # revoke_roles
        _sorted(have.members - {actual.admin}) if have.members else (),  # revoke_members
        # An ADMIN OPTION lets the login hand the group to others, who would keep it.
        _sorted(have.admin_of & wanted_roles) if have.admin_of else (),  # revoke_admin
        () if backstop else have.events,  # drop_events
        to_set,  # set_settings
        to_reset,  # reset_settings
        not postgres and want.audit and actual.server_audit == "list"  # audit_add
        and not have.audited,
        not postgres and not want.audit and have.audited,  # audit_remove
    )
    # In sync, the usual answer for every login on every run: one shared object.
    if not any(values):
        return NO_CHANGES
    return Changes(**dict(zip(_CHANGE_FIELDS, values, strict=True)))  # type: ignore[arg-type]


def _password_differs(want: DesiredLogin, have: ActualRole, granted_changed: bool) -> bool:
    """Whether the password is set. Where the server's verifier cannot be read (PostgreSQL
    without superuser), a grant file's verifier is set when the granted state (the marker's
    fingerprint, which covers the verifier) changed: a new verifier in a reviewed grant must
    reach the server. A sealed file's is set only when this run made it (sealing.py)."""
    if have.verifier_known:
        return have.verifier != want.verifier
    if want.set_password is None:
        return granted_changed and want.verifier is not None
    return want.set_password


def _setting_changes(want: DesiredLogin, have: ActualRole
                     ) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """Settings to set (missing or different) and to reset (not the level's)."""
    if not want.settings and not have.settings:
        return (), ()
    current = dict(have.settings)
    wanted = {n for n, _ in want.settings}
    return (tuple((n, v) for n, v in want.settings if current.get(n) != v),
            tuple(n for n, _ in have.settings if n not in wanted))


def _sorted(names: set[str] | frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(names)) if names else ()


def wants_backstop(target: Target, actual: ActualState) -> bool:
    """MySQL: also lock the account at expiry with a one-shot event, when asked and possible."""
    return (target.expiry_backstop == "event" and actual.event_scheduler
            and actual.event_schema is not None)


def _default_roles(want: DesiredLogin, actual: ActualState) -> set[str]:
    """MariaDB has one default role per account; MySQL 8 makes them all default."""
    return set(want.roles[:1]) if actual.flavor == "mariadb" else set(want.roles)


def _revoke_action(target: Target, role: ActualRole, desired: DesiredState,
                   actual: ActualState, by_user: dict[str, list[str]], unprotected: set[str],
                   problems: list[Problem], refused: dict[str, str]) -> Action:
    hold = _hold(target, role, actual)
    if hold:
        problems.append(_target_problem(target, f"login {role.name} is locked out but not "
                                        f"dropped: {hold}"))
    kill = _kill_sessions(target, role, desired, actual, by_user, unprotected, problems)
    known = desired.known.get(role.name)
    if known is None:
        cause = "removed" if _made_by_jitgrant(role, target, desired) else "unknown"
        owner = marked_owner(role) if cause == "removed" else None
        return Action(target=target.name, kind="revoke", login=role.name, cause=cause,
                      grantee=owner[0] if owner else None, access=owner[1] if owner else None,
                      actual=role, hold=hold, kill_sessions=kill)
    cause = "invalid" if role.name in refused else known.cause  # its grant is refused
    return Action(target=target.name, kind="revoke", login=role.name, cause=cause,
                  grantee=known.grantee, access=known.access, expires=known.expires,
                  grant_files=known.grant_files, actual=role, hold=hold, kill_sessions=kill)


def _kill_sessions(target: Target, role: ActualRole, desired: DesiredState,
                   actual: ActualState, by_user: dict[str, list[str]], unprotected: set[str],
                   problems: list[Problem]) -> bool:
    """MySQL names a connection by user name, not by the account (host) it matched. A revoked
    account's connections end even when a managed account shares the user name (a hand-made
    'login'@'localhost' beside 'login'@'%' is a backdoor whose sessions must not survive); they
    are spared only when the other account is one jitgrant must leave alone."""
    if not role.user or role.is_role:
        return True
    twins = [n for n in by_user.get(role.user, ()) if n != role.name
             and not actual.roles[n].is_role]  # roles have no connections
    spared = [n for n in twins if n not in unprotected]
    if spared:
        problems.append(_target_problem(
            target, f"connections of {role.name} are not killed: they cannot be told apart "
                    f"from those of {', '.join(spared)}, which has the same user name and is "
                    f"left alone", "warning"))
        return False
    kept = [n for n in twins if n in desired.logins]
    if kept:
        problems.append(_target_problem(
            target, f"connections of {', '.join(kept)} are killed with those of {role.name}: "
                    f"they cannot be told apart (same user name); reconnecting works", "warning"))
    return True


def _accounts_by_user(actual: ActualState) -> dict[str, list[str]]:
    """MySQL: the accounts of each user name (several hosts can share one)."""
    grouped: dict[str, list[str]] = {}
    for role in actual.roles.values():
        if role.user:
            grouped.setdefault(role.user, []).append(role.name)
    return grouped


def _stripped(role: ActualRole, actual: ActualState) -> bool:
    """Already as a held revocation leaves a login: it cannot log in and belongs to no one."""
    return (not role.can_login and role.valid_until == NEG_INFINITY and not role.member_of
            and not (role.members - {actual.admin}) and role.sessions == 0)


def owned_object_databases(role: ActualRole, actual: ActualState) -> list[str]:
    """Where REASSIGN/DROP OWNED must run: shared objects ('') are handled from the admin DB,
    which comes last."""
    found = {actual.database if db == "" else db for db in role.depends_in}
    others = sorted(found - {actual.database})
    return others + ([actual.database] if actual.database in found else [])


def reassign_target(target: Target, actual: ActualState, database: str, login: str) -> str:
    """Who receives a revoked login's objects in `database`."""
    owner = target.reassign_owned_to or actual.database_owners.get(database) or actual.admin
    return actual.admin if owner == login else owner


def _hold(target: Target, role: ActualRole, actual: ActualState) -> str | None:
    """A temporary login's objects must never become a superuser's: a SECURITY DEFINER function
    or a view it left behind would then run with superuser rights."""
    if target.engine != "postgres":
        return None
    for database in owned_object_databases(role, actual):
        owner = reassign_target(target, actual, database, role.name)
        if owner in actual.superusers:
            return (f"its objects in database {database} would go to the superuser {owner}; "
                    f"set reassign_owned_to to a role without superuser")
    return None


def _made_by_jitgrant(role: ActualRole, target: Target, desired: DesiredState) -> bool:
    """PostgreSQL logins carry jitgrant's marker comment. MySQL accounts cannot, so there a
    login named <prefix><handle>_<access level> is taken to be one whose grant was removed."""
    if target.engine == "postgres":
        return is_managed(role)
    rest = role.name[len(target.role_prefix):]
    return role.host == "%" and not role.is_role and any(
        rest.endswith("_" + level) and len(rest) > len(level) + 1
        for level in desired.access_levels)
