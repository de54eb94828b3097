"""Where the reconciler's admin DSN of a target comes from, and the one place it is read.

A target names its source in the policy (validate.py fills in a repository-level template):
- `dsn_env: NAME`: the environment variable NAME. When it is unset and systemd handed the
  service a credential `<target>-dsn` (LoadCredential=, in $CREDENTIALS_DIRECTORY), that file
  is read instead: a systemd unit then needs no shell to copy each credential into a variable.
- `dsn_file: /path`: a file (a Kubernetes Secret volume, a Vault agent's template, systemd's
  credentials directory). Its content is the DSN, trailing line breaks removed.

A DSN file is refused, naming the file and never its content, unless every reader it allows
is jitgrant's own user or root (FILE_RULES below). The requester's own passwords are
secretstore.py's, not this module's.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping

from .errors import TargetError, one_line
from .model import Target
from .redact import dsn_secrets

FIELD = "{target}"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
CREDENTIAL_SUFFIX = "-dsn"
MAX_BYTES = 64 * 1024  # far more than any DSN: a bigger file is the wrong file

FILE_RULES = (
    "a DSN file must be a regular file (symlinks are followed: Kubernetes mounts Secrets "
    "through them), owned by jitgrant's user or by root, with no permission for others, not "
    "writable by its group, and readable by its group only when jitgrant's user is in that "
    "group or the group is root's"
)


class DsnError(TargetError):
    """A target's DSN cannot be had. `missing`: its source is simply absent (the variable is
    unset, the file does not exist), which `status` and `standing` skip quietly; otherwise
    the source exists and is refused or unreadable, which is always reported."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


# -- names -----------------------------------------------------------------------------------


def fold(name: str) -> str:
    """A target name as part of an environment variable's name: upper case, and every
    character other than a letter or digit an underscore (orders-prod -> ORDERS_PROD)."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def env_from_template(template: str, target: str) -> str:
    return template.replace(FIELD, fold(target))


def file_from_template(template: str, target: str) -> str:
    """Target names are limited by the policy schema ([a-z0-9][a-z0-9_.-]*): used as they are,
    they can neither leave the template's folder nor be `..`."""
    return template.replace(FIELD, target)


def env_template_problem(template: str) -> str | None:
    """Why `template` cannot name the targets' DSN variables; None when it can."""
    if FIELD not in template:
        return f"must contain {FIELD}, where each target's name goes (folded to upper case)"
    if not ENV_NAME.fullmatch(template.replace(FIELD, "X")):
        return (f"{template!r} does not make environment variable names: use letters, digits, "
                f"_ and {FIELD}, and start with a letter or _")
    return None


def file_template_problem(template: str) -> str | None:
    if FIELD not in template:
        return f"must contain {FIELD}, where each target's name goes"
    if not template.startswith("/") or not template.isprintable():
        return f"{one_line(template)!r} must be an absolute path, without control characters"
    return None


# -- reading ---------------------------------------------------------------------------------

_labels: dict[tuple[str, str], str] = {}
_labels_lock = threading.Lock()  # prefetch threads read DSNs concurrently


def admin_dsn(target: Target, env: Mapping[str, str]) -> str:
    """The admin DSN of `target`, from its source; raises DsnError (one line, naming the
    source and never the DSN). The DSN is remembered for redact() before it is returned."""
    if target.dsn_file is not None:
        dsn, label = read_dsn_file(target.dsn_file), target.dsn_file
    else:
        dsn, label = _from_env(target, env)
    dsn_secrets(dsn)
    with _labels_lock:
        _labels[(target.name, dsn)] = label
    return dsn


def admin_dsn_or_none(target: Target, env: Mapping[str, str]) -> str | None:
    """The target's DSN where it can be had, else None (whoever connects reports why)."""
    try:
        return admin_dsn(target, env)
    except DsnError:
        return None


def where(target: Target, dsn: str) -> str:
    """Where `dsn` of `target` was read, for a message: `$NAME` or a file's path."""
    with _labels_lock:
        label = _labels.get((target.name, dsn))
    if label is not None:
        return label
    return f"${target.dsn_env}" if target.dsn_env else str(target.dsn_file)


def describe(target: Target) -> str:
    """The target's configured source, as the policy names it."""
    return target.dsn_env if target.dsn_env else f"file {target.dsn_file}"


def _from_env(target: Target, env: Mapping[str, str]) -> tuple[str, str]:
    name = target.dsn_env
    if not name:
        raise DsnError("no DSN source: the target names neither dsn_env nor dsn_file",
                       missing=True)
    value = env.get(name)
    if value:
        return value, f"${name}"
    credential = credential_path(target, env)
    if credential is None:
        raise DsnError(f"environment variable {name} is not set", missing=True)
    try:
        return read_dsn_file(credential), credential
    except DsnError as exc:
        if not exc.missing:
            raise
    raise DsnError(f"environment variable {name} is not set, and there is no {credential}",
                   missing=True)


def credential_path(target: Target, env: Mapping[str, str]) -> str | None:
    """`$CREDENTIALS_DIRECTORY/<target>-dsn` when systemd set the directory (an absolute
    path), else None."""
    folder = env.get("CREDENTIALS_DIRECTORY")
    if not folder or not os.path.isabs(folder):
        return None
    return os.path.join(folder, target.name + CREDENTIAL_SUFFIX)


def read_dsn_file(path: str) -> str:
    """The DSN in the file at `path`. Opened without blocking (a FIFO must not hang the run),
    then checked through the open descriptor, so what is checked is what is read."""
    shown = one_line(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(shown, exc) from None
    try:
        refusal = file_refusal(os.fstat(fd), os.geteuid(), _groups())
        if refusal:
            raise DsnError(f"DSN file {shown} is refused: {refusal}")
        data = _read_all(fd, shown)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DsnError(f"DSN file {shown} is not UTF-8 text") from None
    dsn = text.rstrip("\r\n")
    if not dsn.strip():
        raise DsnError(f"DSN file {shown} is empty")
    return dsn


def _open_error(shown: str, exc: OSError) -> DsnError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return DsnError(f"DSN file {shown} does not exist", missing=True)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DsnError(f"DSN file {shown} cannot be read: permission denied for jitgrant's "
                        f"user (uid {os.geteuid()})")
    return DsnError(f"DSN file {shown} cannot be opened: {exc.strerror or exc.errno}")


def _read_all(fd: int, shown: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = os.read(fd, 16384)
        except OSError as exc:
            raise DsnError(f"DSN file {shown} cannot be read: {exc.strerror}") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BYTES:
            raise DsnError(f"DSN file {shown} is larger than {MAX_BYTES // 1024} KiB: not a DSN")
        chunks.append(chunk)


def _groups() -> frozenset[int]:
    return frozenset((os.getegid(), *os.getgroups()))


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_refusal(st: os.stat_result, uid: int, groups: Iterable[int]) -> str | None:
    """Why a file with status `st` may not hold a DSN for a process of `uid` in `groups`;
    None when it may. Root may own it: root reads every file anyway, and both Kubernetes
    (a Secret volume: root-owned, group fsGroup, defaultMode 0440) and systemd (credentials)
    write root-owned files. Its group may read it when the process is in that group (the pod's
    fsGroup) or when the group is root's: systemd grants the service's user read access by an
    ACL, which stat shows as a group-readable file of group root."""
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        kind = next((text for test, text in _KINDS if test(st.st_mode)), "not a regular file")
        return f"it is {kind}, not a regular file"
    if st.st_uid not in (uid, 0):
        return (f"it is owned by uid {st.st_uid}, not by jitgrant's user (uid {uid}) or root: "
                "another user could read or replace it")
    if mode & 0o007:
        return f"other users have access to it (mode {mode:04o}): chmod o-rwx it"
    if mode & 0o020:
        return f"its group may write it (mode {mode:04o}): chmod g-w it"
    if mode & 0o040 and st.st_gid != 0 and st.st_gid not in set(groups):
        return (f"its group (gid {st.st_gid}) may read it and jitgrant's user is not in that "
                f"group (mode {mode:04o}): chmod g-r it")
    return None
