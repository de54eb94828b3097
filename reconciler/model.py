"""The nouns of jitgrant as frozen dataclasses: policy, grants, desired and actual state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from .fastinit import fast_init
from .settings import ParamSpec

ENGINE_NAME_LIMITS = {"postgres": 63, "mysql": 32}  # PostgreSQL counts bytes, MySQL characters
# Sessions listed per login when the catalog is read and when a revocation ends them: a login
# that opens hundreds is counted in full (LoginUsage.sessions_open, sessions_ended), listed so far.
SESSION_CAP = 50

# Group roles that make a login as powerful as the server's owner, or able to stop the
# reconciler, known by name: an access level naming one needs `dangerous: true`. The catalog
# is read anyway (any role with SUPERUSER, CREATEROLE, BYPASSRLS or REPLICATION, a member of
# one, or the reconciler's own role), since a name tells nothing of a role's attributes.
# PostgreSQL: the bootstrap superuser's usual name; running programs and reading or writing
# files as the server's OS user (each is a way to superuser); signalling backends (it can end
# the reconciler's own session, and with it a due revocation). pg_database_owner is not here:
# PostgreSQL refuses to grant it. MySQL/MariaDB: the usual administrator and the system
# accounts (MySQL 8 can grant any account as a role).
SERVER_POWER_ROLES = {
    "postgres": "the usual name of the bootstrap superuser",
    "pg_execute_server_program": "runs programs as the server's operating-system user",
    "pg_write_server_files": "writes files as the server's operating-system user",
    "pg_read_server_files": "reads any file the server's operating-system user can",
    "pg_signal_backend": "can end other sessions, the reconciler's among them",
    "root": "the usual name of the MySQL/MariaDB administrator",
    "mysql.sys": "a MySQL system account",
    "mysql.session": "a MySQL system account with SUPER",
    "mysql.infoschema": "a MySQL system account",
    "mariadb.sys": "a MariaDB system account",
}


@dataclass(frozen=True)
class Target:
    name: str
    engine: str
    # Where apply reads the admin DSN: an environment variable or a file (validate.py gives
    # each valid target exactly one, a repository-level template's included; dsn.py reads it).
    dsn_env: str | None = None
    dsn_file: str | None = None
    environment: str | None = None
    role_prefix: str = "jit_"
    reassign_owned_to: str | None = None
    never_touch: frozenset[str] = frozenset()
    approvers: tuple[str, ...] = ()
    requesters_for_others: tuple[str, ...] = ()
    connect: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    expiry_backstop: str | None = None
    path: str = ""
    line: int = 0
    # Request deadlines for every level on this target that does not set its own (queue.py).
    review_within: timedelta | None = None
    escalate_to: tuple[str, ...] = ()
    request_ttl: timedelta | None = None
    remind_before: timedelta | None = None


@dataclass(frozen=True)
class AccessLevel:
    name: str
    roles: tuple[str, ...]
    max_duration: timedelta
    description: str = ""
    environments: tuple[str, ...] | None = None
    allowed_groups: tuple[str, ...] | None = None
    auto_approve: bool = False
    connection_limit: int | None = None
    # True: its roles may be superuser-equivalent (see SERVER_POWER_ROLES); reviewers see it.
    dangerous: bool = False
    # True: a break-glass level (breakglass.py): auto-approvable for its allowed_groups,
    # marked in the audit, and listed until someone else reviews each grant after its merge.
    break_glass: bool = False
    # Per-login settings, (name, value as text) sorted by name: PostgreSQL role settings or
    # MySQL/MariaDB account limits (settings.py); and the policy line of each, for problems.
    settings: tuple[tuple[str, str], ...] = ()
    setting_lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    path: str = ""
    line: int = 0
    # Request deadlines, read by `jitgrant queue` (queue.py); None: no such deadline.
    review_within: timedelta | None = None
    escalate_to: tuple[str, ...] = ()
    request_ttl: timedelta | None = None
    remind_before: timedelta | None = None  # None: the target's, else 30m (queue.py)


@fast_init
@dataclass(frozen=True)
class Person:
    handle: str
    email: str | None = None
    github: str | None = None
    groups: tuple[str, ...] = ()
    active: bool = True
    gitlab: str | None = None  # matched against merge request authors and approvers
    # Public keys (SSH ed25519/RSA, age recipients) a sealed password is encrypted to (sealed.py)
    keys: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Policy:
    targets: Mapping[str, Target]
    access: Mapping[str, AccessLevel]
    people: Mapping[str, Person]
    policy_owners: tuple[str, ...] = ()
    # False when any policy file had an error: apply then only takes access away.
    valid: bool = True
    # repository.require_approval: approving reviews a grant's pull request needs (0: none)
    require_approval: int = 0


@fast_init
@dataclass(frozen=True)
class Provenance:
    """Where a grant file's current content came from in git."""

    commit: str
    author: str
    author_email: str
    authored: datetime
    committed: datetime
    merge_commit: str | None = None
    pull_request: int | None = None
    # Committer date of the merge (or first-parent) commit that brought the content: the
    # forge sets it when merging, unlike `committed`, which the grant's author sets.
    arrived: datetime | None = None


@fast_init
@dataclass(frozen=True)
class Grant:
    path: str
    grantee: str
    target: str
    access: str
    expires: datetime
    reason: str
    starts: datetime | None = None
    ticket: str | None = None
    password_verifier: str | None = field(default=None, repr=False)
    provenance: Provenance | None = None
    # "sealed": apply makes the password and commits it encrypted to the grantee's keys
    delivery: str | None = None
    # the grant file this one extends (jitgrant extend of a sealed grant): keeps its password
    extends: str | None = None

    def is_current(self, now: datetime) -> bool:
        """starts <= now < expires (the grantee's status is checked separately)."""
        return (self.starts is None or self.starts <= now) and now < self.expires


def login_name(prefix: str, grantee: str, access: str, engine: str) -> str:
    """`<prefix><grantee>_<access>`, lowercased, cut to the engine's limit with a hash suffix."""
    full = f"{prefix}{grantee}_{access}".lower()
    limit = ENGINE_NAME_LIMITS[engine]
    measure = (lambda s: len(s.encode())) if engine == "postgres" else len
    if measure(full) <= limit:
        return full
    suffix = "_" + hashlib.sha256(full.encode()).hexdigest()[:6]
    cut = full
    while measure(cut) + len(suffix) > limit:
        cut = cut[:-1]
    return cut + suffix


@fast_init
@dataclass(frozen=True)
class DesiredLogin:
    """What one login should look like on its server right now."""

    name: str
    grantee: str
    access: str
    expires: datetime
    roles: tuple[str, ...]
    connection_limit: int | None
    verifier: str | None = field(repr=False)
    grants: tuple[Grant, ...]
    settings: tuple[tuple[str, str], ...] = ()  # (name, value), sorted: AccessLevel.settings
    audit: bool = False  # MariaDB: kept in server_audit_incl_users (setting server_audit)
    # Where the server's verifier cannot be read (PostgreSQL without superuser), whether this
    # one is set: None, a grant file's (reviewed): when the granted state changed; True, a
    # password apply made this run (sealed delivery): always; False, a sealed file's taken on
    # its names alone (sealing.trusted): never.
    set_password: bool | None = None

    @property
    def fingerprint(self) -> str:
        """Short digest of the granted state, kept in the role comment to tell drift from change."""
        known: str | None = self.__dict__.get("_fingerprint")  # computed once (diff, render)
        if known is None:
            parts = [self.expires.isoformat(), ",".join(sorted(self.roles)),
                     str(self.connection_limit), self.verifier or ""]
            if self.settings:  # only then: the fingerprints of logins without stay the same
                parts.append(";".join(f"{n}={v}" for n, v in self.settings))
            known = self.__dict__["_fingerprint"] = hashlib.sha256(
                "|".join(parts).encode()).hexdigest()[:12]
        return known


@fast_init
@dataclass(frozen=True)
class KnownLogin:
    """A login name that some grant file at the reconciled commit maps to, active or not."""

    grantee: str
    access: str
    cause: str  # why it is not desired: expired, offboarded, removed, invalid
    expires: datetime | None
    grant_files: tuple[str, ...]
    # False when the cause may come from a broken policy file (a person missing, not inactive).
    definite: bool = True


@dataclass(frozen=True)
class DesiredState:
    target: Target
    logins: Mapping[str, DesiredLogin]
    known: Mapping[str, KnownLogin]
    # When False (policies invalid) the plan only revokes, it never creates or changes.
    may_grant: bool = True
    access_levels: frozenset[str] = frozenset()
    dangerous_levels: frozenset[str] = frozenset()  # access levels with dangerous: true
    # access levels with settings, to check against the server (plan.unfit_settings)
    with_settings: Mapping[str, AccessLevel] = field(
        default_factory=lambda: MappingProxyType({}))
    # Grant files refused for want of approval (repository.require_approval), path -> why:
    # left out of `logins` like invalid ones, and reported by the plan.
    refused: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@fast_init
@dataclass(frozen=True)
class ActualRole:
    """A role or account in the namespace as the server reports it."""

    name: str
    can_login: bool = True
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    inherit: bool = True
    valid_until: datetime | None = None
    connection_limit: int | None = None
    verifier: str | None = field(default=None, repr=False)
    verifier_known: bool = True  # False when the reconciler cannot read password hashes
    comment: str | None = None
    member_of: frozenset[str] = frozenset()
    admin_of: frozenset[str] = frozenset()  # groups it may grant to others (ADMIN OPTION)
    member_of_grants: tuple[tuple[str, str], ...] = ()  # (group role, grantor) rows, PostgreSQL 16+
    members_grants: tuple[tuple[str, str], ...] = ()  # (member, grantor) rows of this login
    default_roles: frozenset[str] | None = None  # MySQL: default roles
    members: frozenset[str] = frozenset()  # roles that are members of this login
    has_config: bool = False  # PostgreSQL: ALTER ROLE ... SET was used
    # PostgreSQL: its role settings (pg_db_role_setting, setdatabase = 0); MySQL: its account
    # limits other than MAX_USER_CONNECTIONS. (name, value) sorted by name.
    settings: tuple[tuple[str, str], ...] = ()
    audited: bool = False  # MariaDB: its user is in server_audit_incl_users
    config_databases: tuple[str, ...] = ()  # PostgreSQL: ALTER ROLE ... IN DATABASE d SET
    locked: bool = False  # MySQL: ACCOUNT LOCK
    depends_in: tuple[str, ...] = ()  # databases where it owns objects or holds privileges
    sessions: int = 0
    session_ids: tuple[int, ...] = ()  # MySQL: processlist ids, for servers without KILL USER
    user: str = ""  # MySQL: the account's user part ('' on PostgreSQL: the name is the role)
    host: str = "%"  # MySQL: the account's host part
    is_role: bool = False  # MySQL: a role, not an account that can log in
    direct_privileges: bool = False  # MySQL: privileges granted to the account itself
    backstop_at: datetime | None = None  # MySQL: when its expiry event fires
    events: tuple[str, ...] = ()  # MySQL: backstop events for this account


@fast_init
@dataclass(frozen=True)
class OpenSession:
    """A session of a login in the namespace, as the server showed it when the catalog was
    read (engines/pg_usage.py, engines/mysql_usage.py). Texts are the client's own words,
    cut short and made one line (sessions.clean); never a password."""

    login: str
    id: str  # PostgreSQL: the backend's pid; MySQL/MariaDB: the connection id
    started: datetime | None  # PostgreSQL: backend_start; MySQL/MariaDB: not exposed (None)
    last_active: datetime | None = None  # the server's last activity of the session
    client: str | None = None  # the client's address (host:port on MySQL/MariaDB)
    application: str | None = None  # application_name / program_name, as the client set it
    database: str | None = None


@fast_init
@dataclass(frozen=True)
class LoginUsage:
    """Counters of a login that survive its disconnects, and how many sessions it had open;
    None where the server does not keep the counter."""

    login: str
    sessions_open: int = 0  # all of them, also those past the cap of listed sessions
    calls: int | None = None  # PostgreSQL: pg_stat_statements calls, summed over the login
    connections_total: int | None = None  # MySQL/MariaDB: performance_schema.accounts


@dataclass(frozen=True)
class ActualState:
    roles: Mapping[str, ActualRole]
    existing_groups: frozenset[str]
    admin: str
    # PostgreSQL: the reconciler is a superuser. MySQL: it has the rights to put back an
    # account made an administrator (CREATE USER, and SYSTEM_USER on MySQL 8).
    admin_is_superuser: bool
    database: str
    database_owners: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    protected: frozenset[str] = frozenset()  # in the namespace but never touched
    superusers: frozenset[str] = frozenset()  # PostgreSQL: every superuser role on the server
    admin_user: str = ""  # MySQL: the user part of the reconciler's account
    server_version: int = 0
    event_scheduler: bool = False
    flavor: str = "postgres"  # postgres | mariadb | mysql
    event_schema: str | None = None  # MySQL: where backstop events live (the DSN's database)
    # Existing group roles that would make a login superuser-equivalent, and why: their
    # attributes or privileges, a role they lead to, or being the reconciler's own role.
    dangerous_groups: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Group roles of access levels -> what they hold a GRANT OPTION on: their members can grant
    # access that outlives their login (PostgreSQL records the group as grantor).
    grant_options: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    # MySQL: logins -> the grants recorded with them as grantor; DROP USER keeps those.
    grants_made: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    # PostgreSQL: pg_settings, by name, to check access levels' settings against.
    parameters: Mapping[str, ParamSpec] = field(default_factory=lambda: MappingProxyType({}))
    # MariaDB's server_audit plugin: absent (not loaded), off (server_audit_logging off), all
    # (logging every user: server_audit_incl_users empty) or list; None when not read.
    server_audit: str | None = None
    # The sessions of the namespace's logins open when the catalog was read (at most
    # SESSION_CAP per login), their counters, and which counters this server keeps at all
    # ("calls", "connections_total"): read in the same batch as the rest (issue #15).
    open_sessions: tuple[OpenSession, ...] = ()
    usage: Mapping[str, LoginUsage] = field(default_factory=lambda: MappingProxyType({}))
    counters: tuple[str, ...] = ()
    sampled: bool = False  # False: the sessions were not read (offline)
