"""When apply makes, keeps, writes and removes a sealed password (sealed.py does the crypto).

A login is sealed when its active grant with the latest expiry says `delivery: sealed`. For
each one, apply keeps the password it sealed before only when all of these hold:
- the sealed file at the reconciled commit (or on a pending audit branch, see gitrepo.PENDING)
  names the same grant file and login: a new sealed grant, or a sealed grant for a login that
  had none, gets a new password; an extension keeps it: the same file with a later
  `expires`, or a file `jitgrant extend` wrote (`extends:` naming a grant that is still
  current, whose password it carries on; the sealed file then names the new one);
- the server has the login, can show its verifier, and that verifier is the file's.
The second is the file's provenance: only the reconciler sets a verifier on the server, so a
sealed file a pull request wrote or changed by hand (a verifier of its own, a ciphertext of its
own) never matches, and the password is made anew and sealed to the grantee's keys. (A file
that keeps the server's verifier beside another ciphertext is kept: the grantee cannot open the
login with it, and asks again; nobody else gains anything.) A reconciler that cannot read
verifiers (a PostgreSQL one that is not superuser) therefore makes a new password on every run
that reconciles the login.

The new password exists only in this process: its verifier goes into the plan, its ciphertext
into the file that the audit commit carries; it is written only when the action that set the
verifier succeeded. The file of a login no longer sealed-and-desired is removed from the tip in
the audit commit (history keeps the ciphertext, of a password whose login is gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from . import credentials
from .model import ActualRole, ActualState, DesiredLogin, DesiredState, Grant, Policy
from .sealed import SEALED_FILE_BYTES, SealedFile, parse_file, seal, sealed_path


@dataclass(frozen=True)
class Outcome:
    """What the tip should hold for one sealed login after this run."""

    file: SealedFile
    new: bool  # a password made by this run (written only when its action succeeded)


@dataclass
class Sealer:
    """One run's sealed passwords. `existing`: sealed file path -> its bytes at the reconciled
    commit; `pending`: path -> bytes of the same path on pending audit branches."""

    policy: Policy
    run_id: str
    existing: Mapping[str, bytes] = field(default_factory=dict)
    pending: Mapping[str, list[bytes]] = field(default_factory=dict)
    made: dict[tuple[str, str, str], Outcome] = field(default_factory=dict)

    def settle(self, desired: DesiredState, actual: ActualState) -> tuple[DesiredState,
                                                                           dict[str, Outcome]]:
        """The desired state with each sealed login's verifier, and each one's outcome."""
        outcomes: dict[str, Outcome] = {}
        logins = dict(desired.logins)
        for name, want in desired.logins.items():
            grant = sealed_grant(want)
            if grant is None:
                continue
            role = actual.roles.get(name)
            outcome = self._outcome(desired.target.name, want, grant, role)
            outcomes[name] = outcome
            logins[name] = replace(want, verifier=outcome.file.verifier,
                                   set_password=outcome.new)
        return replace(desired, logins=MappingProxyType(logins)), outcomes

    def _outcome(self, target: str, want: DesiredLogin, grant: Grant,
                 role: ActualRole | None) -> Outcome:
        path = sealed_path(target, want.name)
        for data in (self.existing.get(path), *self.pending.get(path, ())):
            found = parse_file(data) if data is not None else None
            if found is not None and trusted(found, target, want, grant, role):
                return Outcome(replace(found, grant=grant.path), new=False)
        key = (target, want.name, grant.path)
        if key not in self.made:  # planned twice (an approver's refusal): one password
            self.made[key] = Outcome(self._new(target, want, grant), new=True)
        return self.made[key]

    def _new(self, target: str, want: DesiredLogin, grant: Grant) -> SealedFile:
        password = credentials.new_password()
        engine = self.policy.targets[target].engine
        verifier = credentials.scram_sha256_verifier(password) if engine == "postgres" \
            else credentials.mysql_native_verifier(password)
        person = self.policy.people[want.grantee]
        ciphertext = seal(password, person.keys)
        return SealedFile(target, want.name, want.grantee, grant.path, self.run_id, verifier,
                          ciphertext)


def sealed_grant(want: DesiredLogin) -> Grant | None:
    """The grant that decides the login's password, when it is a sealed one."""
    latest = max(want.grants, key=lambda g: (g.expires, g.path))
    return latest if latest.delivery == "sealed" else None


def trusted(found: SealedFile, target: str, want: DesiredLogin, grant: Grant,
            role: ActualRole | None) -> bool:
    """The file was made for this grant of this login (or for the current grant this one
    extends), and the server holds its verifier. A reconciler that cannot read verifiers
    (PostgreSQL without superuser) takes the file on its names alone: it then never sets the
    verifier the file carries (plan sets a password only when it can compare, or when this run
    made it), so a file a pull request rewrote can at worst keep the grantee from their
    password, never give its author one."""
    return (found.target == target and found.login == want.name
            and found.grantee == want.grantee and _same_grant(found, want, grant)
            and role is not None
            and (role.verifier == found.verifier if role.verifier_known else True))


def _same_grant(found: SealedFile, want: DesiredLogin, grant: Grant) -> bool:
    """The same file (its expiry moved), or an extension of a grant that is still current."""
    if found.grant == grant.path:
        return True
    return grant.extends == found.grant and any(g.path == found.grant for g in want.grants)


def hold(desired: DesiredState, actual: ActualState) -> DesiredState:
    """Without a sealer (a caller that cannot write sealed files): a sealed login is neither
    made nor given a password; one that exists keeps the verifier it has."""
    logins: dict[str, DesiredLogin] = {}
    for name, want in desired.logins.items():
        role = actual.roles.get(name)
        if sealed_grant(want) is None:
            logins[name] = want
        elif role is not None:  # its verifier as found, or none where it cannot be read
            logins[name] = replace(want, verifier=role.verifier if role.verifier_known else None)
    return replace(desired, logins=MappingProxyType(logins))


def tip_changes(runs: list[Any], existing: Mapping[str, bytes]
                ) -> tuple[dict[str, bytes], list[str]]:
    """The sealed files the audit commit writes, and those it removes, for targets that were
    reconciled (a target that failed before its plan changes nothing here). `runs`: TargetRun
    objects with `plan`, `results`, `executed` and `sealed` (login -> Outcome)."""
    writes: dict[str, bytes] = {}
    removes: list[str] = []
    for run in runs:
        if run.plan is None or run.sealed is None or (run.error and not run.executed):
            continue
        target = run.target.name
        done = _succeeded(run)
        for login, outcome in run.sealed.items():
            path = sealed_path(target, login)
            content = outcome.file.dump()
            if (not outcome.new or login in done) and existing.get(path) != content:
                writes[path] = content
        prefix = f"sealed/{target}/"
        removes += [p for p in existing if p.startswith(prefix) and p not in
                    {sealed_path(target, login) for login in run.sealed}]
    return writes, sorted(removes)


def _succeeded(run: Any) -> set[str]:
    """Logins whose action this run did without error."""
    if not run.executed or len(run.results) != len(run.plan.actions):
        return set()
    return {a.login for a, r in zip(run.plan.actions, run.results, strict=True)
            if r.error is None and not r.unknown}


def for_run(repo_path: Any, snapshot: Any, run_id: str, fetch_pending: bool) -> Sealer:
    """The run's sealer: the sealed files at the reconciled commit, and, when the snapshot has
    a sealed grant, those on pending audit branches (fetched first with `fetch_pending`: a
    refused push must not cost the grantee their password)."""
    from . import gitrepo

    sealer = Sealer(snapshot.policy, run_id)
    if snapshot.commit is None:
        return sealer
    repo = gitrepo.open_repo(repo_path)
    sealer.existing = gitrepo.files_under(repo, snapshot.commit, "sealed", SEALED_FILE_BYTES)
    if any(g.delivery == "sealed" for g in snapshot.grants):
        commits = list(gitrepo.fetch_pending(repo).values()) if fetch_pending \
            else gitrepo.pending_commits(repo)
        pending: dict[str, list[bytes]] = {}
        for commit in commits:
            for path, data in gitrepo.files_under(repo, commit, "sealed",
                                                  SEALED_FILE_BYTES).items():
                if data != sealer.existing.get(path):
                    pending.setdefault(path, []).append(data)
        sealer.pending = pending
    return sealer


def sealed_password(repo: Any, commit: str, grant: Grant, login: str,
                    identity: Any) -> str:
    """The password of a sealed grant's login, opened with `identity` (a path, or None for
    ~/.ssh/id_ed25519 then ~/.ssh/id_rsa), from the sealed file at `commit` (the mainline)."""
    from pathlib import Path

    from . import gitrepo
    from .errors import UserError
    from .sealed import default_identities, open_sealed, read_identity

    data = gitrepo.file_at(repo, commit, sealed_path(grant.target, login))
    found = parse_file(data) if data is not None else None
    if found is None or found.grant != grant.path or found.login != login:
        raise UserError(f"no sealed password for {login} from {grant.path} yet: it is made "
                        "when jitgrant apply grants it; wait for the next run, then pull")
    if identity is None:
        usual = [p for p in default_identities() if p.exists()]
        if not usual:
            raise UserError("no SSH key at ~/.ssh/id_ed25519 or ~/.ssh/id_rsa: name the key "
                            "your public key in people.<you>.keys belongs to with --identity")
        identity = usual[0]
    path = Path(identity)
    return open_sealed(found, read_identity(path), path)
