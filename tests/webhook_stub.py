"""A local stand-in for a Slack-compatible incoming webhook: an http.server on 127.0.0.1, in a
thread, that records every POST (path, headers, JSON body) and answers 200 "ok" as Slack does
(or the status a test sets)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
