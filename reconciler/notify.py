"""`--notify URL`: a Slack-compatible webhook (POST of JSON with a `text` field) for the queue's
due steps and apply's outcome. The only module that posts to a chat.

What is posted is built here from names and counts only: never a DSN, a password, a verifier
or a token, and never an error message (a driver's message may quote a connection string).
Every name is escaped as Slack asks (& < >), so a target, person or branch named `<!channel>`
or `<http://evil|x>` is shown as text, not as a mention or a link. A post that fails is one
warning; it never changes the exit code of the command that posted.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 10.0  # seconds: a chat outage must not hold a reconcile run


def escape(text: object) -> str:
    """Slack's escaping of the three control characters of its markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_url(url: str) -> str | None:
    """Why `url` cannot be posted to (None: it can). Its path is a secret (a Slack webhook's
    path is its credential): a message names the host only."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "--notify: expected an http(s) URL"
    return None


def post(url: str, text: str) -> str | None:
    """POST {"text": text}; a warning (never holding the URL's path) when it failed."""
    problem = check_url(url)
    if problem:
        return problem
    host = urlsplit(url).hostname
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "jitgrant"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - checked above
            response.read()
    except urllib.error.HTTPError as exc:
        return f"--notify: {host} answered HTTP {exc.code}; nothing was posted"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # (HTTPException: an answer that is no HTTP, cut short, or with too many headers)
        reason = getattr(exc, "reason", exc)
        kind = "no answer in time" if isinstance(reason, TimeoutError) or \
            "timed out" in str(reason) else type(reason).__name__
        return f"--notify: {host} could not be reached ({kind}); nothing was posted"
    return None


def apply_text(run: Any) -> str:
    """One line per target: what apply did there (counts), and whether it failed."""
    lines = [f"jitgrant apply {escape(run.run_id)}: "
             f"{'failed' if run.failed else 'ok'}"]
    for t in run.targets:
        done, failed = _counts(t)
        parts = [f"{n} {kind}d" for kind, n in done.items() if n]
        if failed:
            parts.append(f"{failed} failed")
        status = "failed" if t.status == "failed" else "ok"
        lines.append(f"• {escape(t.target.name)}: {status}"
                     + (f" ({', '.join(parts)})" if parts else ", nothing to do"))
    return "\n".join(lines)


def _counts(t: Any) -> tuple[dict[str, int], int]:
    done = {"create": 0, "update": 0, "revoke": 0}
    failed = 0
    actions = t.plan.actions if t.plan else ()
    for index, action in enumerate(actions):
        result = t.results[index] if index < len(t.results) else None
        if result is None or not t.executed:
            continue
        if result.error or result.unknown:
            failed += 1
        else:
            done[action.kind] = done.get(action.kind, 0) + 1
    return done, failed


def queue_text(lines: Iterable[str]) -> str:
    """The queue's due steps, one escaped line each."""
    return "\n".join(["jitgrant queue:", *(f"• {escape(line)}" for line in lines)])
