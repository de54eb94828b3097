"""The suite's own secret scan: no password the suite made may show up anywhere it wrote.

A pytest plugin (loaded by tests/conftest.py). While the suite runs it collects
- the passwords: every one `credentials.new_password` returned or a verifier was made from
  in this process, and at the end every password in a local secret store (`secrets/<target>/
  <login>`, written by `jitgrant request` also in subprocesses) under the session's temporary
  folder;
- the outputs: each test's captured stdout, stderr and log, every `CliRunner` result, and
  everything a subprocess returned through `communicate` (which `subprocess.run` uses).
At the end it also opens every age ciphertext (a sealed password, sealing.py, also one a
subprocess wrote) in the files and git objects there with every private key the tests made
there, and adds what it opens to the passwords. It scans those outputs, every file under the
temporary folder except the secret stores themselves, and every object of every git
repository there (commits, trees, blobs, dangling ones too: `git cat-file
--batch-all-objects`), and fails the session on a hit.

A test whose purpose is to print a password (`connect --print-env`, `--pgpass`) carries the
marker `prints_password`; its outputs are not collected. This is instrumentation of the test
harness, not a stand-in for a database or git.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import credentials

MIN_LENGTH = 12  # shorter strings would match by chance; generated passwords have 32 characters


class Collector:
    def __init__(self) -> None:
        self.passwords: set[str] = set()
        self.outputs: list[tuple[str, str]] = []
        self.current = "session set-up"
        self.quiet = False  # inside a test that prints a password on purpose

    def password(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= MIN_LENGTH:
            self.passwords.add(value)

    def output(self, where: str, value: object) -> None:
        if self.quiet or value is None:
            return
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if text:
            self.outputs.append((f"{where} in {self.current}", text))


COLLECTOR = Collector()


def _recording(func: Callable[..., str], returns: bool) -> Callable[..., str]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        result = func(*args, **kwargs)
        COLLECTOR.password(result if returns else (args[0] if args else kwargs.get("password")))
        return result

    wrapper.__wrapped_by_secretscan__ = True  # type: ignore[attr-defined]
    return wrapper


def _install() -> None:
    """Wrap the password makers wherever they were imported by name, and the output sources."""
    originals = {name: getattr(credentials, name) for name in
                 ("new_password", "scram_sha256_verifier", "mysql_native_verifier")}
    for name, func in originals.items():
        if getattr(func, "__wrapped_by_secretscan__", False):
            continue
        wrapped = _recording(func, returns=name == "new_password")
        for module in list(sys.modules.values()):
            if getattr(module, name, None) is func:
                setattr(module, name, wrapped)
    if not getattr(CliRunner.invoke, "__wrapped_by_secretscan__", False):
        CliRunner.invoke = _invoke(CliRunner.invoke)  # type: ignore[method-assign]
    if not getattr(subprocess.Popen.communicate, "__wrapped_by_secretscan__", False):
        subprocess.Popen.communicate = _communicate(  # type: ignore[method-assign]
            subprocess.Popen.communicate)


def _invoke(invoke: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(invoke)
    def wrapper(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = invoke(self, *args, **kwargs)
        COLLECTOR.output("CliRunner output", result.output)
        with _suppressed(ValueError):  # stderr is not separate in every click version
            COLLECTOR.output("CliRunner stderr", result.stderr)
        return result

    wrapper.__wrapped_by_secretscan__ = True  # type: ignore[attr-defined]
    return wrapper


def _communicate(communicate: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(communicate)
    def wrapper(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out, err = communicate(self, *args, **kwargs)
        COLLECTOR.output(f"output of {self.args!r}", out)
        COLLECTOR.output(f"stderr of {self.args!r}", err)
        return out, err

    wrapper.__wrapped_by_secretscan__ = True  # type: ignore[attr-defined]
    return wrapper


class _suppressed:
    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *rest: Any) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


# -- the scan ---------------------------------------------------------------------------------


def is_secret_store(path: Path) -> bool:
    """`<config>/secrets/<target>/<login>`: where passwords are meant to be."""
    return len(path.parts) >= 3 and path.parent.parent.name == "secrets"


def stored_passwords(roots: Iterable[Path]) -> set[str]:
    found = set()
    for root in roots:
        for path in _files(root):
            if is_secret_store(path):
                with _suppressed(OSError, UnicodeDecodeError):
                    found.add(path.read_text().strip())
    return {p for p in found if len(p) >= MIN_LENGTH}


_ARMOR = re.compile(r"-----BEGIN AGE ENCRYPTED FILE-----[A-Za-z0-9+/=\s]*?"
                    r"-----END AGE ENCRYPTED FILE-----")
_PRIVATE = (b"-----BEGIN OPENSSH PRIVATE KEY-----", b"AGE-SECRET-KEY-")


def sealed_passwords(roots: Iterable[Path]) -> set[str]:
    """Passwords apply sealed (sealing.py), also in subprocesses: every age ciphertext in a
    file or git object under `roots`, opened with every private key the tests made there."""
    from reconciler.errors import UserError
    from reconciler.sealed import SealedFile, open_sealed, read_identity

    roots = list(roots)
    keys, texts = [], []
    for root in roots:
        for path in _files(root):
            with _suppressed(OSError):
                head = path.read_bytes()[:64]
                if head.lstrip().startswith(_PRIVATE):
                    with _suppressed(UserError):
                        keys.append((read_identity(path), path))
                elif b"AGE ENCRYPTED" in path.read_bytes():
                    texts.append(path.read_bytes().decode("utf-8", "replace"))
        for git_dir in _git_dirs(root):
            proc = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file",
                                   "--batch-all-objects", "--batch"], capture_output=True)
            texts.append(proc.stdout.decode("utf-8", "replace"))
    armored = {m.group(0) for text in texts for m in _ARMOR.finditer(text)}
    found = set()
    for block in armored:
        lines = block.replace("\\n", "\n").splitlines()
        sealed = SealedFile("", "", "", "", "", "", "\n".join(x.strip() for x in lines))
        for identity, path in keys:
            with _suppressed(UserError):
                found.add(open_sealed(sealed, identity, path))
    return {p for p in found if len(p) >= MIN_LENGTH}


_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{MIN_LENGTH},}}")


def _files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        if "PG_VERSION" in names or "ibdata1" in names:
            dirs[:] = []  # a database server's own files: what tests sent it, not our output
            continue
        dirs[:] = [d for d in dirs if d != "objects" or not os.path.exists(
            os.path.join(folder, "HEAD"))]  # git objects are read through git below
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _git_dirs(root: Path) -> Iterator[Path]:
    for folder, dirs, _ in os.walk(root):
        here = Path(folder)
        if (here / "HEAD").is_file() and (here / "objects").is_dir():
            yield here
            dirs[:] = []


def scan(passwords: set[str], outputs: list[tuple[str, str]], roots: Iterable[Path]
         ) -> list[str]:
    """Every place a password shows up, as 'where: the password's first 4 characters...'."""
    if not passwords:
        return []
    hits = []
    # Generated passwords are URL-safe tokens: look them up among the text's tokens (a set
    # lookup); any other password (a test's own phrase) by substring.
    tokens = {p for p in passwords if _TOKEN.fullmatch(p)}
    phrases = passwords - tokens

    def look(where: str, text: str) -> None:
        found = tokens.intersection(_TOKEN.findall(text)) if tokens else set()
        found |= {p for p in phrases if p in text}
        hits.extend(f"{where}: contains {p[:4]}..." for p in sorted(found))

    for where, text in outputs:
        look(where, text)
    for root in roots:
        for path in _files(root):
            if not is_secret_store(path):
                with _suppressed(OSError):
                    look(str(path), path.read_bytes().decode("utf-8", "replace"))
        for git_dir in _git_dirs(root):
            proc = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file",
                                   "--batch-all-objects", "--batch"], capture_output=True)
            look(f"git objects of {git_dir}", proc.stdout.decode("utf-8", "replace"))
    return hits


# -- the hooks --------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config._secretscan_started = time.time()  # type: ignore[attr-defined]
    _install()


def pytest_collection_finish(session: pytest.Session) -> None:
    _install()  # test modules imported since may have bound the originals by name


def pytest_runtest_setup(item: pytest.Item) -> None:
    COLLECTOR.current = item.nodeid
    COLLECTOR.quiet = item.get_closest_marker("prints_password") is not None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, text in report.sections:
        COLLECTOR.output(name, text)
    if report.when == "teardown":
        COLLECTOR.current, COLLECTOR.quiet = "between tests", False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not session.testscollected or session.config.option.collectonly:
        return
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    roots = [base]
    home_store = Path.home() / ".config" / "jitgrant"
    hits = []
    started = session.config._secretscan_started  # type: ignore[attr-defined]
    if home_store.exists() and home_store.stat().st_mtime >= started:
        hits.append(f"{home_store}: a test wrote to the real config folder "
                    "(set JITGRANT_CONFIG_DIR)")
    passwords = COLLECTOR.passwords | stored_passwords(roots) | sealed_passwords(roots)
    COLLECTOR.quiet = True  # the scan's own git output is not the suite's
    hits += scan(passwords, COLLECTOR.outputs, roots)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"secret scan: {len(passwords)} passwords, "
                            f"{len(COLLECTOR.outputs)} outputs and {base} scanned, "
                            f"{len(hits)} hits")
        for hit in hits[:50]:
            reporter.write_line(f"secret scan: LEAK {hit}", red=True)
    if hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
