"""A stand-in for GitHub's REST API: an http.server on 127.0.0.1, in a thread, answering the
documented endpoints jitgrant reads (GET /repos/{owner}/{repo}/pulls/{n}, .../reviews with Link
pagination, /orgs/{org}/teams/{team}/memberships/{user}) with JSON shaped like GitHub's
documented responses, and GitLab's (API v4: GET /projects/:id/merge_requests/:iid and
.../approvals) shaped like GitLab's documented responses. It records every request it gets
(path and headers), so a test can count the requests and look at what was sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_stub import serving

REPOSITORY = "acme/access"
TOKEN = "ghs_stubTOKEN0123456789abcdefSECRET"  # what a test looks for in every output


def user(login: str) -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**6, "type": "User",
            "html_url": f"https://github.com/{login}"}


def pull(number: int, author: str, merge_sha: str | None, merged_by: str | None = "carol-gh",
         merged_at: str | None = "2026-12-06T10:00:00Z", head: str = "h" * 40,
         web: str = "https://github.com") -> dict[str, Any]:
    """A pull request as GET /repos/{owner}/{repo}/pulls/{n} answers (the fields read, and a
    few around them)."""
    return {"url": f"https://api.github.com/repos/{REPOSITORY}/pulls/{number}",
            "html_url": f"{web}/{REPOSITORY}/pull/{number}", "number": number,
            "state": "closed" if merged_at else "open", "title": "grant",
            "user": user(author), "merged": merged_at is not None, "merged_at": merged_at,
            "merged_by": user(merged_by) if merged_by and merged_at else None,
            "merge_commit_sha": merge_sha, "head": {"ref": "grant", "sha": head},
            "base": {"ref": "main", "sha": "b" * 40}}


def review(login: str, state: str, submitted_at: str = "2026-12-06T09:55:00Z",
           commit_id: str = "h" * 40, review_id: int = 1) -> dict[str, Any]:
    """A review as GET .../pulls/{n}/reviews lists it."""
    return {"id": review_id, "user": user(login), "body": "", "state": state,
            "html_url": f"https://github.com/{REPOSITORY}/pull/1#pullrequestreview-{review_id}",
            "submitted_at": submitted_at, "commit_id": commit_id,
            "author_association": "MEMBER"}


GITLAB_WEB = "https://gitlab.example.com/acme/access"


def gitlab_user(username: str) -> dict[str, Any]:
    return {"id": abs(hash(username)) % 10**6, "username": username, "name": username,
            "state": "active", "web_url": f"https://gitlab.example.com/{username}"}


def merge_request(iid: int, author: str, merge_sha: str | None, merged_by: str = "carol-gl",
                  merged_at: str | None = "2026-12-06T10:00:00.000Z", head: str = "h" * 40,
                  squash_sha: str | None = None) -> dict[str, Any]:
    """A merge request as GET /projects/:id/merge_requests/:iid answers (the fields read, and
    a few around them)."""
    merged = merged_at is not None
    return {"id": 1000 + iid, "iid": iid, "project_id": 7, "title": "grant",
            "state": "merged" if merged else "opened", "author": gitlab_user(author),
            "merged_by": gitlab_user(merged_by) if merged else None,
            "merge_user": gitlab_user(merged_by) if merged else None,
            "merged_at": merged_at, "sha": head,
            "merge_commit_sha": merge_sha if merged else None,
            "squash_commit_sha": squash_sha, "source_branch": "grant", "target_branch": "main",
            "web_url": f"{GITLAB_WEB}/-/merge_requests/{iid}"}


def gitlab_approval(username: str, approved_at: str | None = "2026-12-06T09:55:00.000Z"
                    ) -> dict[str, Any]:
    """One entry of `approved_by` in GET .../merge_requests/:iid/approvals (approved_at: only
    in GitLab versions that give it; None leaves it out)."""
    entry: dict[str, Any] = {"user": gitlab_user(username)}
    if approved_at is not None:
        entry["approved_at"] = approved_at
    return entry


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeGitHub:
    """Routes: path (with query) -> Answer. Unknown paths answer 404 like GitHub."""

    routes: dict[str, Answer] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def pr(self, number: int, data: dict[str, Any], reviews: list[dict[str, Any]],
           page_size: int = 0) -> None:
        """Serve a pull request and its reviews, in pages of `page_size` linked by Link."""
        base = f"/repos/{REPOSITORY}/pulls/{number}"
        self.routes[base] = Answer(body=data)
        size = page_size or max(1, len(reviews))
        pages = [reviews[i:i + size] for i in range(0, max(1, len(reviews)), size)] or [[]]
        for i, page in enumerate(pages):
            path = f"{base}/reviews?per_page=100" + (f"&page={i + 1}" if i else "")
            headers = {}
            if i + 1 < len(pages):
                headers["Link"] = (f'<{self.url}{base}/reviews?per_page=100&page={i + 2}>; '
                                   f'rel="next", <{self.url}{base}/reviews?per_page=100&'
                                   f'page={len(pages)}>; rel="last"')
            self.routes[path] = Answer(body=page, headers=headers)

    def mr(self, iid: int, data: dict[str, Any], approvals: list[dict[str, Any]]) -> None:
        """Serve a GitLab merge request of acme/access and its approvals."""
        base = f"/api/v4/projects/acme%2Faccess/merge_requests/{iid}"
        self.routes[base] = Answer(body=data)
        self.routes[f"{base}/approvals"] = Answer(body={
            "id": data["id"], "iid": iid, "project_id": 7, "title": "grant",
            "state": data["state"], "approved": bool(approvals), "approvals_required": 0,
            "approvals_left": 0, "approved_by": approvals})

    def gitlab_env(self, token: str | None = TOKEN) -> dict[str, str]:
        """The variables GitLab CI sets (and GITLAB_TOKEN), pointing at this stand-in."""
        found = {"CI_API_V4_URL": f"{self.url}/api/v4", "CI_PROJECT_PATH": REPOSITORY,
                 "CI_PROJECT_URL": GITLAB_WEB, "GITHUB_REPOSITORY": ""}
        if token is not None:
            found["GITLAB_TOKEN"] = token
        return found

    def member(self, org: str, team: str, login: str, active: bool = True) -> None:
        self.routes[f"/orgs/{org}/teams/{team}/memberships/{login}"] = Answer(
            body={"url": "", "role": "member", "state": "active" if active else "pending"})

    def env(self, token: str | None = TOKEN) -> dict[str, str]:
        """The variables GitHub Actions sets, pointing at this stand-in."""
        found = {"GITHUB_API_URL": self.url, "GITHUB_REPOSITORY": REPOSITORY}
        if token is not None:
            found["GITHUB_TOKEN"] = token
        return found

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]


@contextmanager
def fake_github() -> Iterator[FakeGitHub]:
    forge = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            forge.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            answer = forge.routes.get(self.path) or Answer(404, {
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest"})
            body = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as forge.url:
        yield forge


def rate_limited() -> Answer:
    """GitHub's answer when the token's primary rate limit is spent."""
    return Answer(403, {"message": "API rate limit exceeded",
                        "documentation_url": "https://docs.github.com/rest/rate-limit"},
                  {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "0",
                   "x-ratelimit-reset": "1765015200", "Retry-After": "60"})


def bad_credentials() -> Answer:
    return Answer(401, {"message": "Bad credentials",
                        "documentation_url": "https://docs.github.com/rest"})
