"""GitHub's REST API over the standard library: the pull requests and reviews behind grants,
and team memberships for code owners; GitLab's (API v4): merge requests and their approvals.
With forge.py (which wraps `gh`), the only module that talks to a forge. Every failure is a
ForgeError whose message is ours and never holds the token: the callers turn it into a
warning, never a failure of the run."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

DEFAULT_API = "https://api.github.com"
TIMEOUT = 10.0  # seconds per request: a forge outage must not hold a target's lock for long
MAX_PAGES = 30  # 3,000 reviews: more is a runaway Link chain, not a pull request
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class ForgeError(Exception):
    """The forge could not answer; `kind` is "unavailable" or "not_found"."""

    def __init__(self, kind: str, note: str) -> None:
        super().__init__(note)
        self.kind, self.note = kind, note


@dataclass(frozen=True)
class GitHub:
    """A repository on a GitHub (or GitHub Enterprise) API, as Actions describes it."""

    api: str
    repository: str  # owner/name
    token: str = field(repr=False)
    provider: ClassVar[str] = "github"
    token_variable: ClassVar[str] = "GITHUB_TOKEN"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHub | None:
        """None when GITHUB_REPOSITORY does not name one: no forge to ask. The token may be
        empty: every request then fails as unavailable, saying so."""
        repository = env.get("GITHUB_REPOSITORY", "").strip()
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
            return None
        api = (env.get("GITHUB_API_URL") or DEFAULT_API).strip().rstrip("/")
        return cls(api, repository, env.get("GITHUB_TOKEN", "").strip())

    @property
    def web(self) -> str:
        """The web address of the repository (github.com for api.github.com)."""
        server = self.api.removesuffix("/api/v3")
        if server == DEFAULT_API:
            server = "https://github.com"
        return f"{server}/{self.repository}"

    def url_of(self, number: int) -> str:
        return f"{self.web}/pull/{number}"

    def pull(self, number: int) -> dict[str, Any]:
        data = self._get(f"/repos/{self.repository}/pulls/{number}")[0]
        if not isinstance(data, dict):
            raise ForgeError("unavailable", f"pull request #{number}: not a JSON object")
        return data

    def reviews(self, number: int) -> list[dict[str, Any]]:
        return [r for r in self._all(f"/repos/{self.repository}/pulls/{number}/reviews?"
                                     "per_page=100") if isinstance(r, dict)]

    def team_member(self, org: str, team: str, login: str) -> bool:
        """Whether `login` is an active member of @org/team (404: not a member)."""
        path = f"/orgs/{quote(org, safe='')}/teams/{quote(team, safe='')}/memberships/" \
               f"{quote(login, safe='')}"
        try:
            data = self._get(path)[0]
        except ForgeError as exc:
            if exc.kind == "not_found":
                return False
            raise
        return isinstance(data, dict) and data.get("state") == "active"

    def _all(self, path: str) -> list[Any]:
        """Every page of a list, following the Link header's rel="next"."""
        items: list[Any] = []
        url: str | None = self.api + path
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            data, headers = self._fetch(url)
            if not isinstance(data, list):
                raise ForgeError("unavailable", "a list was expected and not returned")
            items.extend(data)
            url = self._next(headers.get("Link", ""))
        raise ForgeError("unavailable", f"more than {MAX_PAGES} pages")

    def _next(self, link: str) -> str | None:
        """The next page, only on the API's own host: the token goes nowhere else."""
        match = _NEXT.search(link)
        if match is None:
            return None
        url = match.group(1)
        ours, theirs = urlsplit(self.api), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise ForgeError("unavailable", "the next page is on another host; not followed")
        return url

    def _get(self, path: str) -> tuple[Any, Mapping[str, str]]:
        return self._fetch(self.api + path)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "jitgrant"}

    def _fetch(self, url: str) -> tuple[Any, Mapping[str, str]]:
        if not self.token:
            raise ForgeError("unavailable", f"no token ({self.token_variable} is not set)")
        request = urllib.request.Request(url, headers=self._headers())
        opener = urllib.request.build_opener(_SameHost(urlsplit(self.api)))
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                body = response.read()
                headers = dict(response.headers.items())
        except urllib.error.HTTPError as exc:
            raise _http_error(exc.code, dict(exc.headers.items()) if exc.headers else {},
                              urlsplit(url).path) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ForgeError("unavailable", f"{urlsplit(self.api).netloc} could not be "
                                            f"reached ({_reason(exc)})") from None
        try:
            return json.loads(body), headers
        except ValueError:
            raise ForgeError("unavailable", f"{urlsplit(url).path}: no JSON in the answer") \
                from None


@dataclass(frozen=True)
class GitLab(GitHub):
    """A project on a GitLab API (v4), as GitLab CI describes it (CI_API_V4_URL,
    CI_PROJECT_PATH, CI_PROJECT_URL), read with GITLAB_TOKEN (a project or personal access
    token with read_api: the CI job token cannot read merge requests). `repository` is the
    project's path (group/subgroup/project)."""

    provider: ClassVar[str] = "gitlab"
    token_variable: ClassVar[str] = "GITLAB_TOKEN"
    web_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitLab | None:
        """None unless CI_API_V4_URL and CI_PROJECT_PATH name a project."""
        api = env.get("CI_API_V4_URL", "").strip().rstrip("/")
        project = env.get("CI_PROJECT_PATH", "").strip()
        if not api or not re.fullmatch(r"(?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+", project):
            return None
        web = (env.get("CI_PROJECT_URL") or "").strip().rstrip("/") or \
            f"{api.removesuffix('/api/v4')}/{project}"
        return cls(api, project, env.get("GITLAB_TOKEN", "").strip(), web)

    @property
    def web(self) -> str:
        return self.web_url

    def url_of(self, number: int) -> str:
        return f"{self.web}/-/merge_requests/{number}"

    def pull(self, number: int) -> dict[str, Any]:
        """GET /projects/:id/merge_requests/:iid (the project's path, URL-encoded, is its id)."""
        data = self._get(f"{self._project()}/merge_requests/{number}")[0]
        if not isinstance(data, dict):
            raise ForgeError("unavailable", f"merge request !{number}: not a JSON object")
        return data

    def reviews(self, number: int) -> list[dict[str, Any]]:
        """GET .../merge_requests/:iid/approvals: `approved_by`, each {user, approved_at}
        (approved_at only from GitLab versions that give it)."""
        data = self._get(f"{self._project()}/merge_requests/{number}/approvals")[0]
        found = data.get("approved_by") if isinstance(data, dict) else None
        if not isinstance(found, list):
            raise ForgeError("unavailable", f"merge request !{number}: no approvals list")
        return [a for a in found if isinstance(a, dict)]

    def team_member(self, org: str, team: str, login: str) -> bool:
        """GitLab's groups are not asked (a member lookup needs the user's id): a group
        owner in CODEOWNERS leaves `code_owner` unknown."""
        raise ForgeError("unavailable", "GitLab group membership is not looked up")

    def _project(self) -> str:
        return f"/projects/{quote(self.repository, safe='')}"

    def _headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token, "Accept": "application/json",
                "User-Agent": "jitgrant"}


def forge_from_env(env: Mapping[str, str]) -> GitHub | None:
    """The forge the environment names: GitHub Actions' variables, else GitLab CI's."""
    return GitHub.from_env(env) or GitLab.from_env(env)


class _SameHost(urllib.request.HTTPRedirectHandler):
    """Redirects within the API's own scheme and host only: urllib would send the token
    along to wherever a redirect points (the 3xx answer is then an error)."""

    def __init__(self, api: Any) -> None:
        self.api = (api.scheme, api.netloc)

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        there = urlsplit(newurl)
        if (there.scheme, there.netloc) != self.api:
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _reason(exc: BaseException) -> str:
    """A network error's kind in our words (a library's message may quote the request)."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return type(reason).__name__


def _http_error(code: int, headers: Mapping[str, str], path: str) -> ForgeError:
    lower = {k.lower(): v for k, v in headers.items()}
    if code in (403, 429) and (lower.get("x-ratelimit-remaining") == "0"
                               or "retry-after" in lower):
        wait = lower.get("retry-after") or lower.get("x-ratelimit-reset")
        when = f" (retry after {wait} s)" if "retry-after" in lower else \
            f" (resets at epoch {wait})" if wait else ""
        return ForgeError("unavailable", f"rate limited{when}")
    if code == 401:
        return ForgeError("unavailable", "the token was refused (HTTP 401)")
    if code == 404:
        return ForgeError("not_found", f"{path}: not found (HTTP 404)")
    if code == 403:
        return ForgeError("unavailable", f"{path}: forbidden to this token (HTTP 403)")
    return ForgeError("unavailable", f"{path}: HTTP {code}")
