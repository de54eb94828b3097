"""The only module that talks to a forge's API: GitHub, through the `gh` command line (which
reads its token from GH_TOKEN and the repository from GH_REPO)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from .errors import UserError

TEAMS_QUERY = """query($org: String!, $login: String!) {
  organization(login: $org) { teams(first: 100, userLogins: [$login]) {
    nodes { combinedSlug } } } }"""


@dataclass(frozen=True)
class PullRequest:
    number: int
    author: str
    head_sha: str
    state: str


def _gh(*args: str) -> str:
    exe = shutil.which("gh")
    if exe is None:
        raise UserError("gh (the GitHub command line) is not on PATH")
    proc = subprocess.run([exe, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        # gh's own last line says what went wrong (no token, no such pull request).
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"gh {' '.join(args[:2])} failed (exit {proc.returncode}): {last}")
    return proc.stdout


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise UserError(f"gh returned no JSON for {what}") from None


def pull_request(number: int) -> PullRequest:
    data = _json(_gh("pr", "view", str(number), "--json", "author,headRefOid,state"),
                 f"pull request #{number}")
    return PullRequest(number, str(data["author"]["login"]), str(data["headRefOid"]),
                       str(data["state"]))


def author_teams(org: str, login: str) -> list[str]:
    """The teams of `login` in `org` as org/slug (needs organization Members: read)."""
    data = _json(_gh("api", "graphql", "-f", f"query={TEAMS_QUERY}", "-f", f"org={org}",
                     "-f", f"login={login}"), "the author's teams")
    nodes = ((data.get("data") or {}).get("organization") or {}).get("teams", {}).get("nodes", [])
    return [str(node["combinedSlug"]) for node in nodes]


def approve(number: int, sha: str, body: str) -> None:
    """An approving review of exactly `sha`: a commit pushed since is not approved by it."""
    _gh("api", "--method", "POST", f"repos/{{owner}}/{{repo}}/pulls/{number}/reviews",
        "-f", f"commit_id={sha}", "-f", "event=APPROVE", "-f", f"body={body}")


def enable_auto_merge(number: int, sha: str, method: str) -> None:
    """Merge when the branch rules are met, and only while the head is still `sha`."""
    _gh("pr", "merge", str(number), "--auto", f"--{method}", "--match-head-commit", sha)
