"""An access repository with a break-glass level, where grants arrive through merged pull
requests (a branch merged with --no-ff and GitHub's merge message) and review records land
after them: shared by the break-glass tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tests.helpers import AccessRepo, git, grant, policy, stamp, utc

BG = "breakglass"
_branches = itertools.count(1)


def identity(handle: str) -> dict[str, str]:
    """Commit as this person (author and committer), as their own git client would."""
    name, email = handle.capitalize(), f"{handle}@example.com"
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}


def break_glass_policy(base: dict[str, Any] | None = None,
                       approvers: tuple[str, ...] = ("@bob-gh", "@erin-gh")) -> dict[str, Any]:
    """The helpers' policy, plus a 1h break-glass level for sre, two more people (dave: an sre
    and on-call lead; erin: a code owner) and the target's approvers."""
    pol = base or policy(requesters_for_others=["@dave-gh"])
    pol["targets"]["db1"]["approvers"] = list(approvers)
    roles = list(pol["access"]["readonly"]["roles"])
    pol["access"][BG] = {"roles": roles, "max_duration": "1h", "allowed_groups": ["sre"],
                         "break_glass": True}
    pol["people"]["dave"] = {"email": "dave@example.com", "github": "dave-gh", "groups": ["sre"]}
    pol["people"]["erin"] = {"email": "erin@example.com", "github": "erin-gh",
                             "groups": ["dba"]}
    return pol


class BreakGlassRepo:
    def __init__(self, root: Path, pol: dict[str, Any] | None = None) -> None:
        self.repo = AccessRepo(root)
        self.repo.write("policies/main.yaml", break_glass_policy(pol))
        self.repo.commit("policy")

    @property
    def root(self) -> Path:
        return self.repo.root

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD")

    def merge_request(self, files: dict[str, Any], author: str, pr: int,
                      date: str | None = None) -> tuple[str, str]:
        """A pull request by `author` adding `files`, merged on main: (its commit, the merge)."""
        branch = f"pr-{pr}-{next(_branches)}"
        git(self.root, "checkout", "-q", "-b", branch, "main")
        for rel, content in files.items():
            self.repo.write(rel, content)
        env = identity(author)
        if date:
            env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        commit = self.repo.commit(f"{author}: {', '.join(files)}", **env)
        git(self.root, "checkout", "-q", "main")
        git(self.root, "merge", "-q", "--no-ff", branch, "-m",
            f"Merge pull request #{pr} from acme/{branch}")
        return commit, self.head()

    def request(self, name: str = "alice-bg.yaml", grantee: str = "alice",
                author: str | None = None, pr: int = 12, **fields: Any) -> tuple[str, str]:
        data = grant(grantee, access=BG, expires=utc(minutes=50), reason="INC-9 orders stuck")
        data.update(fields)
        return self.merge_request({f"grants/db1/{name}": data}, author or grantee, pr)

    def review(self, grant_file: str, reviewer: str = "bob", author: str | None = None,
               name: str | None = None, folder: str = "db1", pr: int = 30,
               **extra: Any) -> tuple[str, str]:
        rel = f"reviews/{folder}/{name or Path(grant_file).stem + '.yaml'}"
        body = {"grant": grant_file, "reviewer": reviewer,
                "comment": "looked at the session log: fine", **extra}
        return self.merge_request({rel: body}, author or reviewer, pr)


def record(rel: str, grant_file: str, commit: str, merge: str | None, pr: int | None,
           author: str = "alice", grantee: str = "alice", started: str | None = None,
           action: str = "create", status: str = "ok", break_glass: bool = True,
           run_id: str = "0123456789ab") -> dict[str, dict[str, Any]]:
    """An audit record (file -> data) of a run that granted `grant_file`, shaped as audit.py
    writes it (the fields breakglass.py reads, and the others of the action)."""
    started = started or stamp(utc(minutes=-5))
    entry = {"file": grant_file, "reason": "INC-9 orders stuck", "ticket": None,
             "commit": commit, "author": author.capitalize(),
             "author_email": f"{author}@example.com", "authored": started,
             "merge_commit": merge, "pull_request": pr}
    act: dict[str, Any] = {
        "target": "db1", "login": f"jit_{grantee}_{BG}", "grantee": grantee, "access": BG,
        "action": action, "cause": "granted", "changes": [], "expires": stamp(utc(minutes=50)),
        "grant_files": [grant_file], "grants": [entry], "sql": [], "held": None,
        "ended_by": None, "statements": 2, "sessions_ended": 0, "owned_objects": [],
        "status": status, "error": None}
    if break_glass:
        act["break_glass"] = True
    return {rel: {"schema_version": 1, "run_id": run_id, "started": started,
                  "finished": started, "jitgrant_version": "0", "commit": merge,
                  "actor": "ci", "targets": [], "actions": [act]}}
