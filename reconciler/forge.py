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


GH_TIMEOUT = 120  # seconds: a hung gh must not hold a scheduled job for its whole timeout


@dataclass(frozen=True)
class PullRequest:
    number: int
    author: str
    head_sha: str
    state: str


def _gh(*args: str, stdin: str | None = None) -> str:
    exe = shutil.which("gh")
    if exe is None:
        raise UserError("gh (the GitHub command line) is not on PATH")
    # An argv list, never a shell: a branch name or a comment may hold $(...) and ;
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, input=stdin,
                              timeout=GH_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise UserError(f"gh {' '.join(args[:2])} gave no answer within {GH_TIMEOUT} s") \
            from None
    except OSError as exc:
        raise UserError(f"gh {' '.join(args[:2])} could not be run ({exc.strerror})") from None
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


# -- the request queue (queue.py) ------------------------------------------------------------

QUEUE_LIMIT = 1000  # open pull requests read per run


@dataclass(frozen=True)
class OpenPull:
    """An open pull request as `gh pr list` describes it. `created` is set by GitHub, not by
    whoever made the commits."""

    number: int
    branch: str
    created: str  # RFC 3339, parsed by the caller
    author: str
    reviewers: tuple[str, ...]  # requested: logins, and teams as org/slug
    cross_repository: bool


@dataclass(frozen=True)
class PullThread:
    """What queue reads right before acting on a pull request: whom it waits on, what was said."""

    state: str
    reviewers: tuple[str, ...]
    comments: tuple[tuple[str, str], ...]  # (author's login, body)


def open_pulls() -> list[OpenPull]:
    data = _json(_gh("pr", "list", "--state", "open", "--limit", str(QUEUE_LIMIT), "--json",
                     "number,headRefName,createdAt,author,reviewRequests,isCrossRepository"),
                 "the open pull requests")
    if not isinstance(data, list):
        raise UserError("gh returned no list of pull requests")
    return [OpenPull(int(p["number"]), str(p.get("headRefName", "")), str(p.get("createdAt", "")),
                     str((p.get("author") or {}).get("login", "")),
                     reviewer_names(p.get("reviewRequests")),
                     bool(p.get("isCrossRepository", False))) for p in data]


def pull_thread(number: int) -> PullThread:
    data = _json(_gh("pr", "view", str(number), "--json", "state,reviewRequests,comments"),
                 f"pull request #{number}")
    comments = tuple((str((c.get("author") or {}).get("login", "")), str(c.get("body", "")))
                     for c in data.get("comments") or () if isinstance(c, dict))
    return PullThread(str(data.get("state", "")), reviewer_names(data.get("reviewRequests")),
                      comments)


def reviewer_names(requests: Any) -> tuple[str, ...]:
    """Requested reviewers as logins and org/slug (gh gives a team's organization and slug,
    or a slug alone): lowercased, for comparing with the policy's @names."""
    names: list[str] = []
    for r in requests or ():
        if not isinstance(r, dict):
            continue
        org = str((r.get("organization") or {}).get("login", ""))
        if r.get("__typename") == "Team" or r.get("slug"):
            slug = str(r.get("slug") or r.get("name") or "")
            names.append(f"{org}/{slug}" if org and "/" not in slug else slug)
        elif r.get("login"):
            names.append(str(r["login"]))
    return tuple(n.lower() for n in names if n)


def add_reviewers(number: int, reviewers: list[str]) -> None:
    """Request reviews (logins, or org/team for a team)."""
    _gh("pr", "edit", str(number), "--add-reviewer", ",".join(reviewers))


def comment(number: int, body: str) -> None:
    """A comment, its body on stdin (never an argument: it may begin with -)."""
    _gh("pr", "comment", str(number), "--body-file", "-", stdin=body)


def close(number: int, body: str) -> None:
    """Close the pull request, saying why (the branch is left: its author may reopen)."""
    _gh("pr", "close", str(number), f"--comment={body}")


def open_pull_request(branch: str, base: str | None, title: str, body: str) -> str:
    """`gh pr create` for a request's pushed branch (`jitgrant request --open-pr`, the request
    workflow); what gh printed last, the pull request's address."""
    try:
        out = _gh("pr", "create", "--head", branch, *(["--base", base] if base else []),
                  "--title", title, "--body", body)
    except UserError as exc:
        raise UserError(f"{exc}; the branch {branch} is pushed: open its pull request by "
                        "hand") from None
    lines = out.strip().splitlines()
    return lines[-1] if lines else ""
