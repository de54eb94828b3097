"""A local stand-in for a Slack-compatible incoming webhook: an http.server on 127.0.0.1, in a
thread, that records every POST (path, headers, JSON body) and answers 200 "ok" as Slack does
(or the status a test sets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_stub import serving

SECRET_PATH = "/services/T000/B000/webhookSECRETpath"  # a webhook's path is its credential


@dataclass
class Hook:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    def texts(self) -> list[str]:
        return [str(p["body"].get("text", "")) for p in self.posts]


@contextmanager
def webhook() -> Iterator[Hook]:
    hook = Hook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            size = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(size)
            hook.posts.append({"path": self.path, "headers": dict(self.headers.items()),
                               "raw": raw.decode(), "body": json.loads(raw or b"{}")})
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as base:
        hook.url = base + SECRET_PATH
        yield hook
