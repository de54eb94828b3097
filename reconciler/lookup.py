"""The approval lookups of one run: for the grants of each target's create and update actions,
the pull request they arrived with (one request pair per pull request per run, a handful in
parallel, merged ones cached across runs in .git/jitgrant/approvals.json beside the
provenance cache), the code owners among the reviewers, and the verdicts of
`repository.require_approval`, handed to the plan as data.

Audit records are not a source: anyone who can open a pull request can add a file under
audit/, so an approval read from one would be the author's word."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import codeowners, gitrepo
from .approvals import PullFacts, Verdict, facts, gitlab_facts, judge, refusal, unknown
from .errors import Problem, UserError
from .forge_rest import ForgeError, GitHub, forge_from_env
from .model import Grant, Policy
from .plan import TargetPlan

PARALLEL = 4
_CACHE_VERSION = 1


@dataclass
class Verdicts:
    """One target's: the audit's approval object per grant file, the grant files refused
    (path -> message), and notes for the plan (warnings)."""

    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)


class Lookup:
    """Made once per run (see `for_run`); `check` is called from the targets' workers."""

    def __init__(self, repo_path: Path, policy: Policy, grants: Mapping[str, Grant],
                 forge: GitHub | None, offline: bool = False) -> None:
        self.repo_path, self.policy, self.grants = repo_path, policy, grants
        self.forge, self.offline = forge, offline
        self.needed = policy.require_approval
        self._lock = threading.Lock()
        self._pulls: dict[int, Future[PullFacts]] = {}
        self._teams: dict[tuple[str, str, str], bool | None] = {}
        self._owners_files: dict[str, str | None] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._cache = self._read_cache()
        self._fetched: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, list[int]] = {}  # note -> pull requests, for the warnings

    @classmethod
    def for_run(cls, repo_path: Path, policy: Policy, grants: Mapping[str, Grant],
                env: Mapping[str, str] | None = None, offline: bool = False,
                record: bool = True) -> Lookup | None:
        """None when there is nothing to do: no approval required, and no forge configured
        or nothing to `record` (plan shows no approvals: it asks only to judge them)."""
        forge = forge_from_env(os.environ if env is None else env)
        if (forge is None or not record) and not policy.require_approval:
            return None
        return cls(repo_path, policy, grants, forge, offline)

    def check(self, plan: TargetPlan) -> Verdicts:
        paths = sorted({p for a in plan.actions if a.kind in ("create", "update")
                        for p in a.grant_files if p in self.grants})
        out = Verdicts()
        if self.offline:
            if self.needed:
                out.notes = [Problem(p, 1, f"repository.require_approval: {self.needed}: apply "
                                     "grants this only if its merged pull request has enough "
                                     "approvals (not looked up offline)", "warning")
                             for p in paths]
            return out
        numbers = sorted({n for n in map(self._pr, paths) if n is not None}) \
            if self.forge is not None else []
        waiting = {n: self._start(n) for n in numbers}
        for path in paths:
            grant = self.grants[path]
            verdict = self._verdict(grant, waiting)
            out.approvals[path] = verdict.approval
            why = refusal(grant, verdict, self.policy, self.needed) if self.needed else None
            if why is not None:
                out.refused[path] = why
        return out

    def _pr(self, path: str) -> int | None:
        prov = self.grants[path].provenance
        return prov.pull_request if prov else None

    def _verdict(self, grant: Grant, waiting: Mapping[int, Future[PullFacts]]) -> Verdict:
        number = grant.provenance.pull_request if grant.provenance else None
        provider = self.forge.provider if self.forge else "github"
        if number is None:
            return unknown(provider, "not_found", "no pull request: the commit that brought "
                           "the grant names none (pushed straight to the branch?)")
        if self.forge is None:
            return unknown(provider, "unavailable", "no forge to ask (GITHUB_REPOSITORY is not "
                           "set)")
        url = self.forge.url_of(number)
        try:
            pull = waiting[number].result()
        except ForgeError as exc:
            return unknown(provider, exc.kind, f"{self._named(number)}: {exc.note}", url)
        return judge(grant, pull, self.policy, self._code_owners(grant, pull), provider)

    def _named(self, number: int) -> str:
        if self.forge is not None and self.forge.provider == "gitlab":
            return f"merge request !{number}"
        return f"pull request #{number}"

    # -- pull requests -----------------------------------------------------------------------

    def _start(self, number: int) -> Future[PullFacts]:
        with self._lock:
            known = self._pulls.get(number)
            if known is None:
                cached = self._cache.get(self._key(number))
                if cached is not None:
                    known = Future()
                    known.set_result(cached)
                else:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(PARALLEL, "jitgrant-forge")
                    known = self._pool.submit(self._fetch, number)
                self._pulls[number] = known
            return known

    def _fetch(self, number: int) -> PullFacts:
        assert self.forge is not None
        read = gitlab_facts if self.forge.provider == "gitlab" else facts
        try:
            found = read(number, self.forge.pull(number), self.forge.reviews(number))
        except ForgeError as exc:
            with self._lock:
                self.failures.setdefault(exc.note, []).append(number)
            raise
        if found.merged_at is not None:  # what a merged pull request says no longer changes
            with self._lock:
                self._fetched[self._key(number)] = found.as_dict()
        return found

    def _key(self, number: int) -> str:
        assert self.forge is not None
        if self.forge.provider == "gitlab":
            return f"{self.forge.api}/projects/{self.forge.repository}!{number}"
        return f"{self.forge.api}/repos/{self.forge.repository}#{number}"

    # -- code owners -------------------------------------------------------------------------

    def _code_owners(self, grant: Grant, pull: PullFacts) -> dict[str, bool | None]:
        """Per reviewer: a code owner of the grant's path in CODEOWNERS at the merge commit;
        None when that cannot be told (no such file, a team the token cannot read)."""
        merge = pull.merge_commit_sha
        text = self._owners_file(merge) if merge else None
        if text is None:
            return {r.login: None for r in pull.reviews}
        owners = codeowners.owners_of(text, grant.path)
        return {r.login: self._owns(owners, r.login) for r in pull.reviews}

    def _owners_file(self, commit: str) -> str | None:
        with self._lock:
            if commit not in self._owners_files:
                self._owners_files[commit] = self._read_owners(commit)
            return self._owners_files[commit]

    def _read_owners(self, commit: str) -> str | None:
        try:
            repo = gitrepo.open_repo(self.repo_path)
            for place in codeowners.PLACES:
                data = gitrepo.file_at(repo, commit, place)
                if data is not None:
                    return data.decode("utf-8", "replace")
        except UserError:
            return None
        return None

    def _owns(self, owners: tuple[str, ...], login: str) -> bool | None:
        unsure = False
        for owner in owners:
            name = owner.removeprefix("@")
            if "/" in name and owner.startswith("@"):
                org, team = name.split("/", 1)
                member = self._member(org, team, login)
                if member:
                    return True
                unsure = unsure or member is None
            elif owner.startswith("@"):
                if name.lower() == login.lower():
                    return True
            else:
                unsure = True  # an e-mail address: not told from a login
        return None if unsure else False

    def _member(self, org: str, team: str, login: str) -> bool | None:
        key = (org.lower(), team.lower(), login.lower())
        with self._lock:
            if key in self._teams:
                return self._teams[key]
        assert self.forge is not None
        try:
            found: bool | None = self.forge.team_member(org, team, login)
        except ForgeError:
            found = None
        with self._lock:
            self._teams[key] = found
        return found

    # -- the cache across runs ---------------------------------------------------------------

    def _cache_path(self) -> Path | None:
        try:
            return Path(str(gitrepo.open_repo(self.repo_path).git_dir)) / "jitgrant" / \
                "approvals.json"
        except UserError:
            return None

    def _read_cache(self) -> dict[str, PullFacts]:
        """Merged pull requests seen by earlier runs; a bad cache is ignored."""
        path = self._cache_path()
        try:
            data = json.loads(path.read_text()) if path else None
            if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
                return {}
            return {k: PullFacts.from_dict(v) for k, v in data["pulls"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def close(self) -> None:
        """Wait for the lookups still running; keep the merged pull requests fetched."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if not self._fetched:
            return
        path = self._cache_path()
        if path is None:
            return
        pulls = {k: v.as_dict() for k, v in self._read_cache().items()} | self._fetched
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".approvals-")
        except OSError:
            return  # a read-only .git: the next run asks again
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({"version": _CACHE_VERSION, "pulls": pulls}))
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)

    def warnings(self) -> list[str]:
        """One line per reason a lookup failed, naming the pull requests."""
        out = []
        for note, numbers in sorted(self.failures.items()):
            gitlab = self.forge is not None and self.forge.provider == "gitlab"
            prs = ", ".join(f"{'!' if gitlab else '#'}{n}" for n in sorted(set(numbers)))
            kind = "merge request(s)" if gitlab else "pull request(s)"
            out.append(f"approvals of {kind} {prs} not known: {note}")
        if self.forge is None and self.needed:
            out.append("approvals not looked up: GITHUB_REPOSITORY is not set; "
                       "repository.require_approval refuses every new grant")
        return out
