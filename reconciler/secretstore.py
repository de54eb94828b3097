"""The requester's local password store: one 0600 file per (target, login) under the user's
config directory. Passwords live only here; git carries their verifiers.

Layout: `$JITGRANT_CONFIG_DIR` or `$XDG_CONFIG_HOME/jitgrant` or `~/.config/jitgrant`, then
`secrets/<target>/<login>` holding the password and a newline. An extension reuses the same
file, so the login keeps its password and live sessions are not dropped.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import UserError

_SAFE = re.compile(r"[A-Za-z0-9_.@-]{1,200}")


def config_dir() -> Path:
    explicit = os.environ.get("JITGRANT_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "jitgrant"


def secret_path(target: str, login: str) -> Path:
    for part in (target, login):
        if not _SAFE.fullmatch(part) or part in (".", ".."):
            raise UserError(f"{part!r} cannot name a secret file")
    return config_dir() / "secrets" / target / login


def save(target: str, login: str, password: str) -> Path:
    """Write the password with mode 0600 (directories 0700), atomically: a reader sees the old
    password or the new one, never half of one."""
    path = secret_path(target, login)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        if folder.exists():
            os.chmod(folder, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # created 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(target: str, login: str) -> str | None:
    """The stored password, or None when there is none on this machine."""
    path = secret_path(target, login)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    if path.stat().st_mode & 0o077:
        raise UserError(f"{path}: readable by others; run chmod 600 on it")
    return text.rstrip("\n") or None
