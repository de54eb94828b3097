"""One error tree. A UserError is the user's to fix (exit 1); anything else is a bug (exit 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def one_line(text: str) -> str:
    """Control characters from file names or values escaped, so a problem stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the access repository, located at a file and line."""

    path: str
    line: int
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = f"{one_line(self.path)}:{self.line}" if self.line else one_line(self.path)
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{one_line(self.message)}"

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "message": self.message,
                "severity": self.severity}


class UserError(Exception):
    """An error the user can fix; printed as one line, exit code 1."""

    exit_code = 1


class ConfigError(UserError):
    """The repository, a DSN or an option is unusable."""


class TargetError(UserError):
    """A target could not be reconciled (unreachable, locked, refused)."""


class ConnectionLost(TargetError):
    """The connection to a target dropped while executing. `results` (the engine's
    ActionResults, when it kept track) say action by action what was committed before, what
    the server rolled back and what is in doubt until the next run reads the server."""

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results


class LockHeld(TargetError):
    """Another run holds the target's lock."""


class ForeignLock(TargetError):
    """A session of a role other than the reconciler's holds the target's lock and could not
    be ended: due revocations go ahead without the lock (nothing else does)."""
