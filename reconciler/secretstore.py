"""The requester's local password store: one 0600 file per (target, login) under the user's
config directory. Passwords live only here; git carries their verifiers.

Layout: `$JITGRANT_CONFIG_DIR` or `$XDG_CONFIG_HOME/jitgrant` or `~/.config/jitgrant`, then
`secrets/<target>/<login>` holding the password and a newline. An extension reuses the same
file, so the login keeps its password and live sessions are not dropped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
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
    """Write the password with mode 0600 in 0700 folders, atomically: a reader sees the old
    password or the new one, never half of one. Folders are walked by descriptor without
    following symlinks, so nothing is written, and nothing chmod-ed, outside real folders of
    the user's own; the config folder itself and those above it are never chmod-ed."""
    path = secret_path(target, login)
    _make_folders(path.parents[2])
    with _store_folder(target, create=True) as folder:
        assert folder is not None  # created
        try:
            _write(folder, login, password)
        except OSError as exc:
            raise UserError(f"{path}: cannot write the password: {exc.strerror}") from None
    return path


def _write(folder: int, login: str, password: str) -> None:
    tmp = f".tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(password + "\n")
        os.replace(tmp, login, src_dir_fd=folder, dst_dir_fd=folder)  # replaces a symlink
    except BaseException:
        os.unlink(tmp, dir_fd=folder)
        raise


def check(target: str, login: str) -> None:
    """Refuse now what save() would refuse, creating nothing: a command checks the store
    before it makes its branch, so that a refusal writes nothing at all."""
    secret_path(target, login)
    with _store_folder(target, create=False):
        pass


def _make_folders(folder: Path) -> None:
    """Create `folder` and its missing parents with mode 0700 whatever the umask; folders that
    exist are left exactly as they are."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            continue  # made meanwhile: not ours to change
        except OSError as exc:
            raise UserError(f"{new}: cannot create the folder: {exc.strerror}") from None
        _fix_mode(new)


def _fix_mode(new: Path) -> None:
    """0700 on a folder just made: the umask may have taken bits from it."""
    try:
        fd = os.open(new, _FOLDER | os.O_NOFOLLOW)
    except OSError:
        return  # replaced meanwhile: _store_folder judges what is there now
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@contextlib.contextmanager
def _store_folder(target: str, create: bool) -> Iterator[int | None]:
    """A descriptor of secrets/<target>, each step opened without following a symlink and
    checked to be a folder of the current user's (made 0700 if `create`), or None when it
    does not exist and `create` is false."""
    root = config_dir()
    try:
        base = os.open(root, _FOLDER)  # the user's own choice of folder: may be a symlink
    except FileNotFoundError:
        if create:
            raise UserError(f"{root}: the config folder does not exist") from None
        yield None
        return
    except OSError as exc:
        raise UserError(f"{root}: cannot use it as the config folder: {exc.strerror}") from None
    opened = [base]
    try:
        for name, shown in (("secrets", root / "secrets"),
                            (target, root / "secrets" / target)):
            step = _step(opened[-1], name, shown, create)
            if step is None:
                yield None
                return
            opened.append(step)
        yield opened[-1]
    finally:
        for fd in opened:
            os.close(fd)


def _step(parent: int, name: str, shown: Path, create: bool) -> int | None:
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"{shown}: {_why(exc, parent, name)}") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        os.close(fd)
        raise UserError(f"{shown}: belongs to uid {info.st_uid}, not to you; the password "
                        "store must be real folders of your own: move it away")
    if create and stat.S_IMODE(info.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def _why(exc: OSError, parent: int, name: str) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # Linux says ENOTDIR for a symlink here
        link = stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode)
        what = "a symlink" if link else "not a folder"
        return f"is {what}; the password store must be real folders of your own: move it away"
    return f"cannot use it for the password store: {exc.strerror}"


def load(target: str, login: str) -> str | None:
    """The stored password, or None when there is none on this machine. Read through the same
    checked folders save() writes to, and never through a symlink."""
    path = secret_path(target, login)
    with _store_folder(target, create=False) as folder:
        if folder is None:
            return None
        try:
            fd = os.open(login, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = "is a symlink, not followed" if exc.errno == errno.ELOOP else exc.strerror
            raise UserError(f"{path}: {why}") from None
        with os.fdopen(fd) as handle:
            if os.fstat(fd).st_mode & 0o077:
                raise UserError(f"{path}: readable by others; run chmod 600 on it")
            text = handle.read()
    return text.rstrip("\n") or None
