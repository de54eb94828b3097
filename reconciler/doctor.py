"""`jitgrant doctor`: for each target, what `apply` will need, checked without changing
anything; each problem in one line with the statement that fixes it. The catalog reads are
the engines' (`doctor_facts`); this module judges them.

Exit 0 healthy, 2 warnings (something `apply` would do fails or is weaker, but every
revocation goes through), 1 a revocation could fail."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .clicommon import handled, repo_option
from .completion import target_option
from .engines import mysql, postgres
from .errors import UserError, one_line
from .model import Target
from .dsn import DsnError, admin_dsn
from .redact import redact

if TYPE_CHECKING:
    from .validate import Snapshot

SEVERITIES = ("ok", "note", "warning", "error")
EXIT = {"ok": 0, "note": 0, "warning": 2, "error": 1}


@dataclass(frozen=True)
class Finding:
    """One check of one target. `fix` is the statement (or setting) that makes it pass."""

    target: str
    check: str
    severity: str  # one of SEVERITIES
    message: str
    fix: str | None = None

    def line(self) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return one_line(f"{self.target}: {self.severity}: {self.check}: {self.message}{fix}")


def exit_code(findings: list[Finding]) -> int:
    """1 when any revocation could fail, else 2 on any warning, else 0."""
    codes = {EXIT[f.severity] for f in findings}
    return 1 if 1 in codes else 2 if 2 in codes else 0


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_findings(target: Target, facts: Mapping[str, Any]) -> list[Finding]:
    """Every step of apply against the facts `postgres.doctor_facts` read."""
    def found(check: str, severity: str, message: str, fix: str | None = None) -> Finding:
        return Finding(target.name, check, severity, message, fix)

    admin = postgres.ident(facts["admin"])
    out = [_pg_tls(found, facts)]
    if facts["superuser"]:
        out.append(found("privileges", "ok", f"{facts['admin']} is a superuser"))
    else:
        out += _pg_privileges(found, facts, admin)
    out += _pg_groups(found, facts, admin)
    out.append(_lock(found, facts["lock_holders"], "SELECT pg_terminate_backend({pid})"))
    return out


Found = Callable[..., Finding]


def _pg_tls(found: Found, facts: Mapping[str, Any]) -> Finding:
    mode = facts["sslmode"]
    if facts["tls"]:
        return found("TLS", "ok", "the connection is encrypted")
    if mode in ("require", "verify-ca", "verify-full"):
        return found("TLS", "error", f"sslmode={mode} but the connection is not encrypted")
    return found("TLS", "note", "the connection is not encrypted (the DSN does not ask for "
                 "TLS)", "sslmode=verify-full in the DSN, where the server is not local")


def _pg_privileges(found: Found, facts: Mapping[str, Any], admin: str) -> list[Finding]:
    new = facts["version"] >= 160000
    name = facts["admin"]
    out = []
    if not facts["createrole"]:
        out.append(found("create a login", "warning", f"{name} lacks CREATEROLE",
                         f"ALTER ROLE {admin} CREATEROLE"))
        out.append(found("drop the login", "error", f"{name} lacks CREATEROLE: a revoked "
                         "login can be neither stripped of its group roles nor dropped",
                         f"ALTER ROLE {admin} CREATEROLE"))
    if not facts["signal"]:
        out.append(found("end sessions", "error", f"{name} cannot end other sessions (it "
                         "lacks pg_signal_backend)", f"GRANT pg_signal_backend TO {admin}"))
    if not facts["stats"]:
        out.append(found("see sessions", "warning", f"{name} sees managed logins' sessions "
                         "without their start, client or last activity, so the audit cannot "
                         "tell when access was used (it lacks pg_read_all_stats)",
                         f"GRANT pg_read_all_stats TO {admin}"))
    for login in facts["undroppable"]:
        out.append(found("drop the login", "error", f"{name} has no ADMIN on login {login}, "
                         "so it cannot drop it", f"GRANT {postgres.ident(login)} TO {admin} "
                         "WITH ADMIN OPTION, INHERIT FALSE, SET FALSE"))
    out += _pg_objects(found, facts, admin, new)
    missing = [p for p, ok in sorted(facts["log"].items()) if not ok]
    if missing:
        out.append(found("statement logging", "warning", f"{name} cannot keep its statements "
                         f"out of the server log (no SET on {', '.join(missing)})",
                         f"GRANT SET ON PARAMETER {', '.join(missing)} TO {admin}"))
    if not out:
        out.append(found("privileges", "ok", "every step of apply is allowed"))
    return out


def _pg_objects(found: Found, facts: Mapping[str, Any], admin: str,
                new: bool) -> list[Finding]:
    """REASSIGN OWNED and DROP OWNED run in every database a login may own objects in: the
    reconciler must connect there and have the receiving role's privileges."""
    name = facts["admin"]
    if not facts["owner_exists"]:
        return [found("reassign owned objects", "error", "reassign_owned_to names no role on "
                      "this server", "CREATE ROLE the role, or fix reassign_owned_to")]
    out = []
    owners: dict[str, tuple[bool, bool]] = {}
    for database, connect, owner, owner_super, has_owner in facts["databases"]:
        if not connect:
            out.append(found("reassign owned objects", "error", f"{name} may not connect to "
                             f"database {database}", f"GRANT CONNECT ON DATABASE "
                             f"{postgres.ident(database)} TO {admin}"))
        owners[owner] = (owner_super, has_owner)
    for owner, (owner_super, has_owner) in sorted(owners.items()):
        if owner_super:
            out.append(found("reassign owned objects", "error", f"objects would go to "
                             f"{owner}, a superuser, which {name} is not", "set "
                             "reassign_owned_to to a non-superuser role in the target's policy"))
        elif not has_owner:
            grant = f"GRANT {postgres.ident(owner)} TO {admin}"
            out.append(found("reassign owned objects", "error", f"{name} lacks the privileges "
                             f"of {owner}, which REASSIGN OWNED needs",
                             grant + (" WITH INHERIT TRUE" if new else "")))
    return out


def _pg_groups(found: Found, facts: Mapping[str, Any], admin: str) -> list[Finding]:
    out = []
    for group, exists, group_super, has_admin in facts["groups"]:
        if not exists:
            out.append(found(f"group role {group}", "warning", "does not exist: grants of the "
                             "access levels naming it fail",
                             f"CREATE ROLE {postgres.ident(group)} NOLOGIN"))
        elif facts["superuser"]:
            continue
        elif group_super:
            out.append(found(f"group role {group}", "error", f"is a superuser: "
                             f"{facts['admin']} can neither grant nor revoke it",
                             "name a role that is not a superuser in the access level"))
        elif facts["version"] >= 160000 and not has_admin:
            out.append(found(f"group role {group}", "error", f"{facts['admin']} has no ADMIN "
                             "OPTION on it: it can neither grant nor revoke it",
                             f"GRANT {postgres.ident(group)} TO {admin} WITH ADMIN OPTION, "
                             "INHERIT FALSE, SET FALSE"))
    return out


# -- MySQL and MariaDB -------------------------------------------------------------------------


def mysql_findings(target: Target, facts: Mapping[str, Any]) -> list[Finding]:
    """Every step of apply against the facts `mysql.doctor_facts` read."""
    def found(check: str, severity: str, message: str, fix: str | None = None) -> Finding:
        return Finding(target.name, check, severity, message, fix)

    acct = mysql.account(facts["user"], facts["host"])
    out = [_my_tls(found, facts)] + _my_privileges(found, facts, acct)
    out += _my_groups(found, facts, acct)
    if target.expiry_backstop == "event":
        out += _my_event(found, facts, acct)
    out.append(_lock(found, facts["lock_holders"], "KILL CONNECTION {pid}"))
    return out


def _my_tls(found: Found, facts: Mapping[str, Any]) -> Finding:
    if facts["tls"]:
        return found("TLS", "ok", "the connection is encrypted")
    if facts["tls_required"]:
        return found("TLS", "error", "the DSN requires TLS but the connection is not encrypted")
    return found("TLS", "note", "the connection is not encrypted (the DSN does not ask for "
                 "TLS)", "ssl_mode=VERIFY_IDENTITY in the DSN, where the server is not local")


# Per step of apply: the global privileges that allow it (any of them), and the severity when
# none is held. A revoked account is locked, its connections are found (PROCESS) and killed,
# and it is dropped.
_MARIADB_STEPS = (
    ("create, lock and drop accounts", ("CREATE USER",), "CREATE USER", "error"),
    ("end sessions: see other accounts' connections", ("PROCESS",), "PROCESS", "error"),
    ("end sessions: kill them", ("CONNECTION ADMIN", "SUPER"), "CONNECTION ADMIN", "error"))
_MYSQL_STEPS = (
    ("create, lock and drop accounts", ("CREATE USER",), "CREATE USER", "error"),
    ("end sessions: see other accounts' connections", ("PROCESS",), "PROCESS", "error"),
    ("end sessions: kill them", ("CONNECTION_ADMIN", "SUPER"), "CONNECTION_ADMIN", "error"))


def _my_privileges(found: Found, facts: Mapping[str, Any], acct: str) -> list[Finding]:
    have, schema = facts["global"], facts["schema"]
    user = facts["user"]
    out = []
    steps = _MARIADB_STEPS if facts["flavor"] == "mariadb" else _MYSQL_STEPS
    for check, any_of, grant, severity in steps:
        if not set(any_of) & have:
            out.append(found(check, severity, f"{user} lacks {grant}",
                             f"GRANT {grant} ON *.* TO {acct}"))
    if "SELECT" not in have and ("mysql", "SELECT") not in schema:
        out.append(found("read the accounts", "error", f"{user} cannot read the mysql "
                         "database", f"GRANT SELECT ON mysql.* TO {acct}"))
    if facts["flavor"] == "mariadb" and "UPDATE" not in have and ("mysql", "UPDATE") not in schema:
        out.append(found("set default roles", "warning", f"{user} lacks the UPDATE privilege on "
                         "mysql.*, which a default role for an account needs",
                         f"GRANT UPDATE ON mysql.* TO {acct}"))
    if not out:
        out.append(found("privileges", "ok", "every step of apply is allowed"))
    return out


def _my_groups(found: Found, facts: Mapping[str, Any], acct: str) -> list[Finding]:
    out = []
    for group in sorted(facts["groups"]):
        existing = facts["existing_groups"]
        if existing is not None and group not in existing:
            out.append(found(f"group role {group}", "warning", "does not exist: grants of the "
                             "access levels naming it fail",
                             f"CREATE ROLE {mysql.identifier(group)}"))
        elif not facts["roles"].get(group):
            out.append(found(f"group role {group}", "error", f"{facts['user']} has no ADMIN "
                             "OPTION on it: it can neither grant nor revoke it",
                             f"GRANT {mysql.identifier(group)} TO {acct} WITH ADMIN OPTION"))
    return out


def _my_event(found: Found, facts: Mapping[str, Any], acct: str) -> list[Finding]:
    """expiry_backstop: event: CREATE EVENT at grant, DROP EVENT at revocation (which fails
    without EVENT once an event exists), and the scheduler that fires them."""
    database = facts["database"]
    if not database:
        return [found("expiry backstop", "warning", "expiry_backstop: event needs a database "
                      "in the DSN, for the events", "add /DATABASE to the DSN")]
    out = []
    if "EVENT" not in facts["global"] and (database, "EVENT") not in facts["schema"]:
        out.append(found("expiry backstop", "error", f"{facts['user']} lacks EVENT on "
                         f"{database}: the backstop events can be neither made nor dropped",
                         f"GRANT EVENT ON {mysql.identifier(database)}.* TO {acct}"))
    if not facts["scheduler"]:
        out.append(found("expiry backstop", "warning", "the event scheduler is off: the "
                         "backstop events never fire", "SET GLOBAL event_scheduler = ON (and "
                         "event_scheduler=ON in the server's configuration)"))
    return out


# -- both --------------------------------------------------------------------------------------


def _lock(found: Found, holders: list[tuple[int, str]] | None, end: str) -> Finding:
    if holders is None:
        return found("lock", "ok", "free (taken and released at once)")
    who = ", ".join(f"{role or '(unknown)'} (session {pid})" for pid, role in holders)
    return found("lock", "warning", f"held by {who or 'a session that just ended'}: apply "
                 "waits for no one and fails while it is held",
                 "let that run finish, or end it: " + end.format(
                     pid=holders[0][0] if holders else "PID"))


def overdue_findings(snapshot: Snapshot, only: tuple[str, ...], now: datetime,
                     env: Mapping[str, str]) -> list[Finding]:
    """Revocations overdue: logins that can still log in past their grant's end plus the
    grace. Read as `plan` reads them (a dry run: nothing changes); a target that cannot be
    read is already an error of its own checks."""
    from .apply import reconcile
    from .overdue import overdue_logins

    run = reconcile(snapshot, now, only=only, execute=False, env=env)
    return [Finding(o.target, "revocations overdue", "error", o.line(now).split(": ", 1)[1],
                    "jitgrant apply --target " + o.target + " (and read why its revocation "
                    "failed in the audit record)") for o in overdue_logins(run)]


FACTS: dict[str, Callable[[Target, str, frozenset[str]], dict[str, Any]]] = {
    "postgres": postgres.doctor_facts, "mysql": mysql.doctor_facts}
JUDGES: dict[str, Callable[[Target, Mapping[str, Any]], list[Finding]]] = {
    "postgres": postgres_findings, "mysql": mysql_findings}


def check_target(target: Target, groups: frozenset[str], env: Mapping[str, str]
                 ) -> list[Finding]:
    """Every check of one target; a target that cannot be reached is one error."""
    try:
        dsn = admin_dsn(target, env)  # remembered: every message is masked with it
    except DsnError as exc:
        fix = (f"export {target.dsn_env}=<the DSN>" if exc.missing and target.dsn_env else
               "give the DSN file to jitgrant's user only (chmod 0600) or set its variable")
        return [Finding(target.name, "reachable", "error", str(exc), fix)]
    try:
        facts = FACTS[target.engine](target, dsn, groups)
    except UserError as exc:
        return [Finding(target.name, "reachable", "error", redact(str(exc)))]
    return JUDGES[target.engine](target, facts)


def check_push(repo: Path) -> Finding:
    """Whether the audit commit `apply --push` makes could be pushed: `git push --dry-run`."""
    from .gitrepo import push_dry_run

    problem = push_dry_run(repo)
    if problem is None:
        return Finding("audit", "audit branch", "ok", "pushable to origin")
    if problem.startswith("no origin"):
        return Finding("audit", "audit branch", "note", f"not checked: {problem}")
    return Finding("audit", "audit branch", "warning", f"git push --dry-run failed: "
                   f"{redact(problem)}", "let the reconciler's credentials push to the "
                   "branch (a deploy key or token with write access)")


def check_forge(required: int, env: Mapping[str, str]) -> list[Finding]:
    """Whether apply can ask the forge who approved a grant (nothing is sent: the variables
    only). Without repository.require_approval a missing token only costs the record."""
    from .forge_rest import forge_from_env

    forge = forge_from_env(env)
    severity = "warning" if required else "note"
    fix = ("run apply where GITHUB_REPOSITORY and GITHUB_TOKEN (pull-requests: read) are set, "
           "as GitHub Actions does")
    if forge is not None and forge.provider == "gitlab":
        fix = "set GITLAB_TOKEN (a project access token with read_api) in the reconcile job"
    if forge is None:
        if not required:
            return []
        return [Finding("approvals", "forge", severity, f"repository.require_approval is "
                        f"{required} and GITHUB_REPOSITORY is not set: apply refuses every "
                        "new grant", fix)]
    if not forge.token:
        return [Finding("approvals", "forge", severity, f"{forge.token_variable} is not set: "
                        "who approved is not recorded" + (", and apply refuses every new grant"
                                                          if required else ""), fix)]
    return [Finding("approvals", "forge", "ok", f"asks {forge.api} about {forge.repository}")]


def to_text(findings: list[Finding], targets: list[str]) -> str:
    lines = [f.line() for f in findings if f.severity not in ("ok",)]
    bad = {f.target for f in findings if f.severity in ("warning", "error")}
    lines += [f"{name}: healthy" for name in targets if name not in bad]
    return "\n".join(lines)


def to_json(findings: list[Finding]) -> str:
    return json.dumps({"exit_code": exit_code(findings),
                       "checks": [asdict(f) for f in findings]}, indent=2, ensure_ascii=False)


@click.command("doctor")
@repo_option
@target_option()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@handled
def doctor_command(repo: Path, only: tuple[str, ...], fmt: str) -> int:
    """Check, changing nothing, that apply can do every step on each target; each problem
    with the statement that fixes it (exit 0 healthy, 2 warnings, 1 a revocation could
    fail)."""
    from .apply import group_roles, select_targets
    from .snapshot import read_snapshot
    from .timeutil import now_utc

    snapshot = read_snapshot(repo, "HEAD", now_utc())
    targets = select_targets(snapshot, only)
    if not targets:
        raise UserError("the policies define no target")
    groups = group_roles(snapshot)
    findings = [f for t in targets for f in check_target(t, groups, os.environ)]
    reachable = tuple(t.name for t in targets
                      if not any(f.target == t.name and f.check == "reachable"
                                 and f.severity == "error" for f in findings))
    if reachable:
        findings += overdue_findings(snapshot, reachable, now_utc(), os.environ)
    findings.append(check_push(repo))
    findings += check_forge(snapshot.policy.require_approval, os.environ)
    click.echo(to_json(findings) if fmt == "json" else
               to_text(findings, [t.name for t in targets] + ["audit"]))
    return exit_code(findings)
