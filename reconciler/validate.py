"""Schema and policy checks: files in, Policy + Grants + problems (each at path:line) out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from .dsn import (ENV_NAME, env_from_template, env_template_problem, file_from_template,
                  file_template_problem)
from .errors import Problem
from .fastinit import fast_init
from .load import Document, SourceFile, YamlProblem, parse_yaml, to_problem
from .model import (SERVER_POWER_ROLES, AccessLevel, Grant, Person, Policy, Provenance, Target,
                    login_name)
from .schemas import describe, errors
from .settings import name_problem, refusal_for_engine, value_text
from .timeutil import format_duration, parse_duration, parse_timestamp

POLICY_SECTIONS = ("targets", "access", "people")
VERIFIER_FORMATS = {
    "postgres": (re.compile(r"SCRAM-SHA-256\$[1-9][0-9]{3,6}:[A-Za-z0-9+/]+={0,2}"
                            r"\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}="),
                 "must be a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>"
                 ":<ServerKey>)"),
    "mysql": (re.compile(r"\*[0-9A-F]{40}"),
              "must be a mysql_native_password hash (* followed by 40 upper-case hex digits)"),
}


@fast_init
@dataclass(frozen=True)
class RawGrant:
    """What could be read of a grant file even when it is invalid: enough to name its login."""

    path: str
    grantee: str | None
    target: str | None
    access: str | None
    expires: datetime | None


@dataclass
class Snapshot:
    """Everything read from one commit (or the working tree) of the access repository."""

    policy: Policy
    grants: list[Grant]
    problems: list[Problem]
    invalid_grants: list[RawGrant] = field(default_factory=list)
    inactive: list[Grant] = field(default_factory=list)  # valid files of people who left
    commit: str | None = None
    changed: frozenset[str] | None = None  # paths new, changed or deleted against --base

    def grant_at(self, path: str) -> Grant | RawGrant | None:
        """The grant file at `path`, valid or not; None when there is none (deleted)."""
        for grant in (*self.grants, *self.inactive):
            if grant.path == path:
                return grant
        return next((raw for raw in self.invalid_grants if raw.path == path), None)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class Context:
    """Facts the checks need that do not come from the files themselves."""

    now: datetime
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    changed: frozenset[str] | None = None  # paths new or changed against --base; None: unknown
    unknown_origin: frozenset[str] = frozenset()  # committed before a shallow clone's boundary


Checked = list[tuple[Grant | None, RawGrant, list[Problem]]]


def build_snapshot(policy_files: list[SourceFile], grant_files: list[SourceFile],
                   ctx: Context, commit: str | None = None) -> Snapshot:
    problems: list[Problem] = []
    policy = load_policy(policy_files, problems)
    return check_snapshot(policy, problems, grant_files, ctx, commit)


def check_snapshot(policy: Policy, problems: list[Problem], grant_files: list[SourceFile],
                   ctx: Context, commit: str | None = None) -> Snapshot:
    """The snapshot of a loaded policy (and its `problems`) and the grant files."""
    checked = _check_grants(grant_files, policy, ctx)
    grants: list[Grant] = []
    invalid: list[RawGrant] = []
    inactive: list[Grant] = []
    for grant, raw, found in checked:
        problems.extend(found)
        if grant is None or any(p.severity == "error" for p in found):
            invalid.append(raw)
        elif _person_active(policy, grant.grantee):
            grants.append(grant)
        else:
            inactive.append(grant)
    return Snapshot(policy, grants, sorted(problems), invalid, inactive, commit, ctx.changed)


def _check_grants(grant_files: list[SourceFile], policy: Policy, ctx: Context) -> Checked:
    checked: Checked = []
    for source in grant_files:
        found: list[Problem] = []
        grant, raw = check_grant(source, policy, ctx, found)
        checked.append((grant, raw, found))
    return checked


# -- policies --------------------------------------------------------------------------------


def load_policy(files: list[SourceFile], problems: list[Problem]) -> Policy:
    merged: dict[str, dict[str, tuple[Document, Any]]] = {s: {} for s in POLICY_SECTIONS}
    owners: list[str] = []
    required = 0
    defaults = DsnDefaults()
    bad_entries: set[tuple[str, str, str]] = set()  # (file, section, name)
    start = len(problems)
    for source in files:
        doc = _parse(source, problems)
        if doc is None:
            continue
        bad_entries |= {(doc.path, *entry) for entry in _schema_problems(doc, "policy", problems)}
        if not isinstance(doc.data, dict):
            continue
        for section in POLICY_SECTIONS:
            _merge_section(doc, section, merged[section], problems)
        repo_section = doc.data.get("repository")
        if isinstance(repo_section, dict):
            owners.extend(o for o in repo_section.get("policy_owners", []) if isinstance(o, str))
            required = max(required, _required(repo_section.get("require_approval")))
            defaults.read(doc, repo_section, problems)

    def target(name: str, v: dict[str, Any], doc: Document,
               found: list[Problem]) -> Target | None:
        return _target(name, v, doc, found, defaults)

    targets = _build(merged["targets"], "targets", bad_entries, target, problems)
    defaults.check_folding(targets, problems)
    access = _build(merged["access"], "access", bad_entries, _access, problems)
    people = _build(merged["people"], "people", bad_entries, _person, problems)
    _check_namespaces(targets, access, problems)
    valid = not any(p.severity == "error" for p in problems[start:]) and bool(files)
    if not files:
        problems.append(Problem("policies", 0, "no policy files found under policies/"))
    return Policy(MappingProxyType(targets), MappingProxyType(access), MappingProxyType(people),
                  tuple(owners), valid=valid, require_approval=required)


def _required(value: Any) -> int:
    """repository.require_approval (the schema checks it); across files the highest wins."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usable(level: AccessLevel, target: Target) -> bool:
    return level.environments is None or target.environment in level.environments


def _check_namespaces(targets: dict[str, Target], access: dict[str, AccessLevel],
                      problems: list[Problem]) -> None:
    """Roles jitgrant relies on must lie outside every namespace it owns: inside, it would
    revoke them as unknown logins."""
    for target in targets.values():
        prefix, keep = target.role_prefix, target.never_touch
        if target.engine == "postgres" and prefix.startswith("pg_"):
            # PostgreSQL refuses to create such roles, and pg_ roles belong to the server.
            problems.append(Problem(target.path, target.line, f"targets.{target.name}."
                                    f"role_prefix: {prefix!r}: PostgreSQL reserves names "
                                    f"starting with pg_ for its own roles"))
        if target.reassign_owned_to and target.reassign_owned_to.lower().startswith(prefix) \
                and target.reassign_owned_to not in keep:
            problems.append(Problem(target.path, target.line, f"targets.{target.name}."
                                    f"reassign_owned_to: {target.reassign_owned_to!r} is inside "
                                    f"the namespace {prefix!r}: jitgrant would drop it"))
        for level in access.values():
            refusal = engine_refusal(target, level) if _usable(level, target) else None
            if refusal:
                problems.append(Problem(level.path, level.line, f"access.{level.name}: "
                                        f"{refusal}; its grants on target {target.name} are "
                                        f"refused", "warning"))
            for role in level.roles:
                if role.lower().startswith(prefix) and role not in keep:
                    problems.append(Problem(level.path, level.line, f"access.{level.name}.roles:"
                                            f" {role!r} is inside the namespace {prefix!r} of "
                                            f"target {target.name}: jitgrant would drop it"))


def _parse(source: SourceFile, problems: list[Problem]) -> Document | None:
    try:
        return parse_yaml(source)
    except YamlProblem as exc:
        problems.append(to_problem(source, exc))
        return None


def _schema_problems(doc: Document, schema: str, problems: list[Problem]) -> set[tuple[str, str]]:
    """Add schema problems; return the (section, name) entries they touch. (A whole section
    that is wrong is not a mapping, and is not merged: it must not take the same section of
    the other files with it.)"""
    touched: set[tuple[str, str]] = set()
    for error in errors(schema, doc.data):
        for path, message in describe(error):
            problems.append(Problem(doc.path, doc.line(*path), message))
            if len(path) >= 2:
                touched.add((str(path[0]), str(path[1])))
    return touched


def _merge_section(doc: Document, section: str, into: dict[str, tuple[Document, Any]],
                   problems: list[Problem]) -> None:
    entries = doc.data.get(section)
    if not isinstance(entries, dict):
        return
    for name, value in entries.items():
        if name in into:
            first = into[name][0]
            problems.append(Problem(doc.path, doc.line(section, name),
                                    f"{section}.{name} is defined twice: in {first.path}:"
                                    f"{first.line(section, name)} and here"))
            continue
        into[name] = (doc, value)


def _build(entries: dict[str, tuple[Document, Any]], section: str,
           bad: set[tuple[str, str, str]], make: Any, problems: list[Problem]) -> dict[str, Any]:
    built = {}
    for name, (doc, value) in entries.items():
        if (doc.path, section, name) in bad or not isinstance(value, dict):
            continue
        item = make(name, value, doc, problems)
        if item is not None:
            built[name] = item
    return built


@dataclass
class DsnDefaults:
    """repository.dsn_env / repository.dsn_file: the DSN source of every target that names
    none, each a template with {target} (see dsn.py). Each is (template, path, line)."""

    env: tuple[str, str, int] | None = None
    file: tuple[str, str, int] | None = None
    broken: bool = False  # a template had a problem: its targets are not reported again

    def read(self, doc: Document, section: dict[str, Any], problems: list[Problem]) -> None:
        for key, check in (("dsn_env", env_template_problem), ("dsn_file", file_template_problem)):
            template = section.get(key)
            if not isinstance(template, str):
                continue
            line = doc.line("repository", key)
            earlier = getattr(self, key[4:])
            if earlier is not None:
                problems.append(Problem(doc.path, line, f"repository.{key} is defined twice: in "
                                        f"{earlier[1]}:{earlier[2]} and here"))
                continue
            problem = check(template)
            other = self.file if key == "dsn_env" else self.env
            if problem is None and other is not None:
                problem = (f"the policies also set repository.dsn_"
                           f"{'file' if key == 'dsn_env' else 'env'} ({other[1]}:{other[2]}): "
                           "keep one")
            if problem:
                problems.append(Problem(doc.path, line, f"repository.{key}: {problem}"))
                self.broken = True
                continue
            setattr(self, key[4:], (template, doc.path, line))

    def source(self, name: str, v: dict[str, Any], doc: Document,
               problems: list[Problem]) -> tuple[str | None, str | None] | None:
        """(dsn_env, dsn_file) of target `name`: its own, else the repository's template;
        None after a problem."""
        own_env, own_file = v.get("dsn_env"), v.get("dsn_file")
        if own_env is not None and own_file is not None:
            problems.append(Problem(doc.path, doc.line("targets", name, "dsn_file"),
                                    f"targets.{name}: dsn_env and dsn_file are both set: a "
                                    "target reads its DSN from one of them"))
            return None
        if own_env is not None or own_file is not None:
            return own_env, own_file
        if self.file is not None:
            return None, file_from_template(self.file[0], name)
        if self.env is not None:
            variable = env_from_template(self.env[0], name)
            if not ENV_NAME.fullmatch(variable):
                problems.append(Problem(doc.path, doc.line("targets", name),
                                        f"targets.{name}: repository.dsn_env makes {variable!r}"
                                        " of its name, not an environment variable's name"))
                return None
            return variable, None
        if self.broken:
            return None
        problems.append(Problem(doc.path, doc.line("targets", name),
                                f"targets.{name}: missing dsn_env or dsn_file (where apply "
                                "reads its admin DSN), and the policies set no repository."
                                "dsn_env or repository.dsn_file template"))
        return None

    def check_folding(self, targets: Mapping[str, Target], problems: list[Problem]) -> None:
        """Two targets whose names fold to the same variable would share one DSN unnoticed."""
        if self.env is None:
            return
        seen: dict[str, Target] = {}
        for target in sorted(targets.values(), key=lambda t: (t.path, t.line, t.name)):
            if target.dsn_env != env_from_template(self.env[0], target.name):
                continue
            first = seen.setdefault(target.dsn_env, target)
            if first is not target:
                problems.append(Problem(target.path, target.line, f"targets.{target.name}: "
                                        f"repository.dsn_env makes ${target.dsn_env} of its "
                                        f"name, as of target {first.name} ({first.path}:"
                                        f"{first.line}): give one of them its own dsn_env"))


def _target(name: str, v: dict[str, Any], doc: Document, problems: list[Problem],
            defaults: DsnDefaults | None = None) -> Target | None:
    if v.get("expiry_backstop") == "event" and v["engine"] != "mysql":
        problems.append(Problem(doc.path, doc.line("targets", name, "expiry_backstop"),
                                f"targets.{name}.expiry_backstop: event is for mysql targets"))
        return None
    source = (defaults or DsnDefaults()).source(name, v, doc, problems)
    if source is None:
        return None
    deadlines = _deadlines(name, v, doc, problems, "targets")
    if deadlines is None:
        return None
    return Target(
        name=name, engine=v["engine"], dsn_env=source[0], dsn_file=source[1],
        environment=v.get("environment"),
        role_prefix=v.get("role_prefix", "jit_"), reassign_owned_to=v.get("reassign_owned_to"),
        never_touch=frozenset(v.get("never_touch", ())), approvers=tuple(v.get("approvers", ())),
        requesters_for_others=tuple(v.get("requesters_for_others", ())),
        connect=MappingProxyType(dict(v.get("connect", {}))),
        expiry_backstop=v.get("expiry_backstop"), path=doc.path, line=doc.line("targets", name),
        **deadlines)


def _access(name: str, v: dict[str, Any], doc: Document,
            problems: list[Problem]) -> AccessLevel | None:
    try:
        max_duration = parse_duration(str(v["max_duration"]))
    except ValueError as exc:
        problems.append(Problem(doc.path, doc.line("access", name, "max_duration"),
                                f"access.{name}.max_duration: {exc}"))
        return None
    deadlines = _deadlines(name, v, doc, problems)
    if deadlines is None:
        return None
    dangerous = bool(v.get("dangerous", False))
    if not dangerous and _power_roles(name, v["roles"], doc, problems):
        return None
    break_glass = v.get("break_glass") is True
    if break_glass and _break_glass_problems(name, v, max_duration, doc, problems):
        return None
    settings = v.get("settings") or {}
    if _setting_problems(name, settings, doc, problems):
        return None
    return AccessLevel(
        name=name, roles=tuple(v["roles"]), max_duration=max_duration,
        description=v.get("description", ""), environments=_opt_tuple(v.get("environments")),
        allowed_groups=_opt_tuple(v.get("allowed_groups")),
        auto_approve=bool(v.get("auto_approve", False)),
        connection_limit=v.get("connection_limit"), dangerous=dangerous,
        break_glass=break_glass,
        settings=tuple(sorted((k, value_text(x)) for k, x in settings.items())),
        setting_lines=MappingProxyType({k: doc.line("access", name, "settings", k)
                                        for k in settings}),
        path=doc.path, line=doc.line("access", name), **deadlines)


DEADLINE_KEYS = ("review_within", "request_ttl", "remind_before")


def _deadlines(name: str, v: dict[str, Any], doc: Document, problems: list[Problem],
               section: str = "access") -> dict[str, Any] | None:
    """The request deadlines of a level or a target (queue.py reads them), parsed like
    max_duration; None when one is bad (the level or target is then left out, as for a bad
    max_duration)."""
    found: dict[str, Any] = {}
    for key in DEADLINE_KEYS:
        if key not in v:
            continue
        try:
            found[key] = parse_duration(str(v[key]))
        except ValueError as exc:
            problems.append(Problem(doc.path, doc.line(section, name, key),
                                    f"{section}.{name}.{key}: {exc}"))
            return None
    if v.get("escalate_to") and "review_within" not in v:
        problems.append(Problem(doc.path, doc.line(section, name, "escalate_to"),
                                f"{section}.{name}.escalate_to: needs review_within (when to "
                                "escalate)"))
        return None
    found["escalate_to"] = tuple(v.get("escalate_to", ()))
    return found


# The longest a break-glass grant may last: access taken before anyone reviews it stays short.
BREAK_GLASS_MAX = timedelta(hours=4)


def _break_glass_problems(name: str, v: dict[str, Any], max_duration: timedelta,
                          doc: Document, problems: list[Problem]) -> bool:
    """A break-glass level merges without a review before it: only named groups may use it,
    and not for long. True when it breaks either rule (the level is then left out: its grants
    are invalid, never granted). A missing max_duration is the schema's problem."""
    found = []
    if not v.get("allowed_groups"):
        found.append(Problem(doc.path, doc.line("access", name, "break_glass"),
                             f"access.{name}: break_glass needs allowed_groups (the on-call "
                             "people who may use it)"))
    if max_duration > BREAK_GLASS_MAX:
        found.append(Problem(doc.path, doc.line("access", name, "max_duration"),
                             f"access.{name}.max_duration: {format_duration(max_duration)} is "
                             f"over the {format_duration(BREAK_GLASS_MAX)} a break_glass level "
                             "may last"))
    problems.extend(found)
    return bool(found)


def _setting_problems(name: str, settings: dict[str, Any], doc: Document,
                      problems: list[Problem]) -> bool:
    """Report settings no target may have (refused names, bad limits); True when any. The
    level is then left out: its grants are invalid, never granted."""
    found = False
    for key, value in settings.items():
        why = name_problem(key, value)
        if why is not None:
            found = True
            problems.append(Problem(doc.path, doc.line("access", name, "settings", key),
                                    f"access.{name}.settings.{key}: {why}"))
    return found


def _power_roles(name: str, roles: list[str], doc: Document, problems: list[Problem]) -> bool:
    """Report the roles known by name to be superuser-equivalent; True when there are any.
    (The level is then left out: its grants are invalid, never granted.)"""
    found = False
    for index, role in enumerate(roles):
        why = SERVER_POWER_ROLES.get(role)
        if why is not None:
            found = True
            problems.append(Problem(doc.path, doc.line("access", name, "roles", index),
                                    f"access.{name}.roles: {role!r} {why}: an access level "
                                    "granting it needs `dangerous: true`"))
    return found


def _person(name: str, v: dict[str, Any], doc: Document, problems: list[Problem]) -> Person:
    return Person(handle=name, email=v.get("email"), github=v.get("github"),
                  groups=tuple(v.get("groups", ())), active=bool(v.get("active", True)),
                  gitlab=v.get("gitlab"),
                  keys=_person_keys(name, v.get("keys", ()), doc, problems))


def _person_keys(name: str, keys: list[str], doc: Document,
                 problems: list[Problem]) -> tuple[str, ...]:
    """The keys a sealed password may be encrypted to; each one that is not is an error
    (sealedkeys.py), its text never echoed."""
    if not keys:
        return ()
    from .sealedkeys import check_keys

    return check_keys(name, keys, lambda i: doc.line("people", name, "keys", i),
                      lambda line, message: problems.append(Problem(doc.path, line, message)))


def _opt_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _person_active(policy: Policy, handle: str) -> bool:
    person = policy.people.get(handle)
    return person is not None and person.active


# -- grants ----------------------------------------------------------------------------------


def check_grant(source: SourceFile, policy: Policy, ctx: Context,
                problems: list[Problem]) -> tuple[Grant | None, RawGrant]:
    doc = _parse(source, problems)
    if doc is None:
        return None, RawGrant(source.path, None, None, None, None)
    data = doc.data if isinstance(doc.data, dict) else {}
    _schema_problems(doc, "grant", problems)
    _check_folder(doc, data, problems)
    if any(p.severity == "error" for p in problems):
        return None, _raw(source.path, data, None)
    times = _grant_times(doc, data, problems)
    if times is None:
        return None, _raw(source.path, data, None)
    expires, starts = times
    raw = _raw(source.path, data, expires)
    grant = Grant(path=source.path, grantee=data["grantee"], target=data["target"],
                  access=data["access"], expires=expires, starts=starts, reason=data["reason"],
                  ticket=data.get("ticket"), password_verifier=data.get("password_verifier"),
                  provenance=ctx.provenance.get(source.path), delivery=data.get("delivery"),
                  extends=data.get("extends"))
    _check_policy(doc, grant, policy, ctx, problems)
    return grant, raw


def _raw(path: str, data: dict[str, Any], expires: datetime | None) -> RawGrant:
    return RawGrant(path, _str_or_none(data.get("grantee")), _str_or_none(data.get("target")),
                    _str_or_none(data.get("access")), expires)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check_folder(doc: Document, data: dict[str, Any], problems: list[Problem]) -> None:
    parts = doc.path.split("/")
    if len(parts) != 3 or parts[0] != "grants":
        problems.append(Problem(doc.path, 1, "grant files belong in grants/<target>/"))
    elif isinstance(data.get("target"), str) and parts[1] != data["target"]:
        problems.append(Problem(doc.path, doc.line("target"),
                                f"target: {data['target']!r} does not match the folder "
                                f"grants/{parts[1]}/"))


def _grant_times(doc: Document, data: dict[str, Any],
                 problems: list[Problem]) -> tuple[datetime, datetime | None] | None:
    parsed: dict[str, datetime | None] = {"starts": None}
    for key in ("expires", "starts"):
        if key in data:
            try:
                parsed[key] = parse_timestamp(str(data[key]))
            except ValueError as exc:
                problems.append(Problem(doc.path, doc.line(key), f"{key}: {exc}"))
                return None
    expires, starts = parsed["expires"], parsed["starts"]
    assert expires is not None
    if starts is not None and expires <= starts:
        problems.append(Problem(doc.path, doc.line("expires"), "expires: must be after starts"))
        return None
    return expires, starts


def _check_policy(doc: Document, grant: Grant, policy: Policy, ctx: Context,
                  problems: list[Problem]) -> None:
    def error(key: str, message: str, severity: str = "error") -> None:
        problems.append(Problem(doc.path, doc.line(key), message, severity))

    target = policy.targets.get(grant.target)
    level = policy.access.get(grant.access)
    person = policy.people.get(grant.grantee)
    is_new = ctx.changed is not None and grant.path in ctx.changed
    if target is None:
        error("target", f"target: unknown target {grant.target!r}")
    if level is None:
        error("access", f"access: unknown access level {grant.access!r}")
    if person is None or not person.active:
        state = "is not in people" if person is None else "is not active"
        if is_new:
            error("grantee", f"grantee: {grant.grantee!r} {state}")
        else:
            error("grantee", f"grantee: {grant.grantee!r} {state}; the grant is inactive and "
                             "the file can be deleted", "warning")
    past_and_new = is_new and grant.expires <= ctx.now
    if target is not None and level is not None:
        _check_level(grant, target, level, person, error)
        if not past_and_new and grant.path not in ctx.unknown_origin:
            # (a new grant already past gets its own, clearer problem below; one committed
            # before a shallow clone's boundary has no known commit time)
            _check_lifetime(grant, level, ctx, error)
    if grant.delivery == "sealed":
        _check_sealed(grant, person, error)
    elif target is not None and target.engine == "mysql" and grant.password_verifier is None:
        error("target", "password_verifier: required for mysql targets (an account without "
                        "one would accept an empty password)")
    if target is not None and grant.password_verifier is not None:
        pattern, message = VERIFIER_FORMATS[target.engine]
        if not pattern.fullmatch(grant.password_verifier):
            error("password_verifier", f"password_verifier: {message}")
    if past_and_new:
        error("expires", "expires: already in the past")


def _check_sealed(grant: Grant, person: Person | None, error: Any) -> None:
    if grant.password_verifier is not None:
        error("password_verifier", "password_verifier: a sealed grant carries none: apply "
                                   "makes the password and seals it to the grantee's keys")
    if person is not None and not person.keys:
        error("delivery", f"delivery: sealed needs people.{person.handle}.keys (an SSH or age "
                          "public key to seal the password to)")


def _check_level(grant: Grant, target: Target, level: AccessLevel, person: Person | None,
                 error: Any) -> None:
    if level.environments is not None and target.environment not in level.environments:
        error("access", f"access: {level.name!r} is not allowed in environment "
                        f"{target.environment!r} of target {target.name!r}")
    if person is not None and level.allowed_groups is not None:
        if not set(level.allowed_groups) & set(person.groups):
            error("access", f"access: {level.name!r} is only for groups "
                            f"{', '.join(level.allowed_groups)}; {person.handle} is in "
                            f"{', '.join(person.groups) or 'none'}")
    name = login_name(target.role_prefix, grant.grantee, grant.access, target.engine)
    if name in target.never_touch:
        error("grantee", f"grantee: the login {name!r} is listed in never_touch")
    refusal = engine_refusal(target, level)
    if refusal:
        error("access", f"access: {refusal}")


def engine_refusal(target: Target, level: AccessLevel) -> str | None:
    """Why the planner would skip every grant of `level` on `target`, known from the policy
    alone: `request` and the pull-request check refuse it rather than `plan`."""
    wrong = refusal_for_engine(dict(level.settings), target.engine)
    if wrong:
        return f"{level.name!r} has {wrong}"
    if target.engine == "mysql" and len(level.roles) > 1:
        # MySQL 8 could activate several; the target's flavor is only known once connected.
        return (f"{level.name!r} names {len(level.roles)} roles, and a mysql target gets one "
                f"default role per account on MariaDB: name one role (that role can include "
                f"the others)")
    return None


# A commit dated later than this past the clock is forged (or its clock is broken).
CLOCK_SKEW = timedelta(minutes=5)


def _check_lifetime(grant: Grant, level: AccessLevel, ctx: Context, error: Any) -> None:
    """The lifetime counts from the later of `starts` and a time the author cannot set: now
    for a grant the pull request adds or changes; else the committer date of the merge (or
    first-parent) commit that brought it, never later than now. Commit dates come from the
    committer's clock, so one in the future is refused, not trusted."""
    forged = _future_date(grant.provenance, ctx.now)
    if forged is not None:
        error("expires", f"expires: the commit that brought the grant is dated {forged}, in "
                         "the future: a commit date is set by its author and cannot count")
        return
    begin = _lifetime_start(grant, ctx)
    lifetime = grant.expires - begin
    if lifetime <= timedelta(0):
        error("expires", "expires: was already past when the grant was committed")
    elif lifetime > level.max_duration:
        error("expires", f"expires: the grant lasts {format_duration(lifetime)}, over the "
                         f"{format_duration(level.max_duration)} allowed for {level.name!r}")


def _lifetime_start(grant: Grant, ctx: Context) -> datetime:
    prov = grant.provenance
    is_new = ctx.changed is not None and grant.path in ctx.changed
    if prov is None or is_new:
        arrived = ctx.now
    else:
        arrived = min(prov.arrived or prov.committed, ctx.now)
    return max(arrived, grant.starts) if grant.starts else arrived


def _future_date(prov: Provenance | None, now: datetime) -> str | None:
    """The first date of the grant's commits that lies in the future, as text; else None."""
    if prov is None:
        return None
    for date in (prov.authored, prov.committed, prov.arrived):
        if date is not None and date > now + CLOCK_SKEW:
            return date.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None
