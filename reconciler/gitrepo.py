"""Everything jitgrant does with git, and the only module that imports it."""

from __future__ import annotations

import contextlib

import json
import os
import posixpath
import random
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import git

from . import parallel
from .errors import ConfigError, UserError, one_line
from .fastinit import fast_init
from .load import MAX_FILE_BYTES, YAML_SUFFIXES, SourceFile
from .model import Provenance

_MERGE_PR = re.compile(r"^Merge pull request #(\d+) ")
_SQUASH_PR = re.compile(r"\(#(\d+)\)\s*$")
# GitLab's merge commit names its merge request on a line of its message, never in the subject;
# its default template puts that line last, after the title and description it quotes.
_GITLAB_MR = re.compile(r"^See merge request (?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+!(\d+)[ \t]*$",
                        re.MULTILINE)
_DEFAULT_IDENTITY = {"GIT_AUTHOR_NAME": "jitgrant", "GIT_AUTHOR_EMAIL": "jitgrant@localhost",
                     "GIT_COMMITTER_NAME": "jitgrant", "GIT_COMMITTER_EMAIL": "jitgrant@localhost"}


def open_repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ConfigError(f"{path}: not a git repository (use --repo)") from None


def resolve(repo: git.Repo, rev: str) -> str:
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}"))
    except git.GitCommandError:
        raise ConfigError(f"unknown revision {rev!r}") from None


TreeEntry = tuple[str, str, int, str]  # (mode, blob sha, size, path)


def read_tree(repo: git.Repo, commit: str, tops: Iterable[str]) -> list[SourceFile]:
    """The YAML files under `tops` at `commit`, read with one ls-tree and one cat-file."""
    return read_entries(repo, commit, list_tree(repo, commit, tops))


def file_at(repo: git.Repo, commit: str, path: str) -> bytes | None:
    """A regular file's committed bytes at `commit`; None when there is none there."""
    try:
        kind = repo.git.cat_file("-t", f"{commit}:{path}")
        if kind != "blob" or _mode_at(repo, commit, path) == "120000":
            return None
        return bytes(repo.git.cat_file("blob", f"{commit}:{path}", stdout_as_string=False))
    except git.GitCommandError:
        return None


def _mode_at(repo: git.Repo, commit: str, path: str) -> str:
    listing = str(repo.git.ls_tree(commit, "--", path))
    return listing.split(" ", 1)[0] if listing else ""


def list_tree(repo: git.Repo, commit: str, tops: Iterable[str]) -> list[TreeEntry]:
    """The YAML files under `tops` at `commit`, unread: one ls-tree."""
    return [e for e in _blobs_under(repo, commit, tops) if e[3].endswith(YAML_SUFFIXES)]


def _blobs_under(repo: git.Repo, commit: str, tops: Iterable[str]) -> list[TreeEntry]:
    """Every blob under `tops` at `commit` (symbolic links included), unread: one ls-tree."""
    listing = repo.git.ls_tree("-r", "-z", "--long", "--full-tree", commit, "--", *tops)
    entries = []
    for item in filter(None, listing.split("\0")):
        meta, path = item.split("\t", 1)
        mode, kind, sha, size = meta.split()
        if kind == "blob":
            entries.append((mode, sha, int(size), path))
    return entries


def unsafe_entries(repo: git.Repo, commit: str | None, tops: Iterable[str]) -> list[str]:
    """Paths under `tops` that could make a checkout differ from the committed bytes, or hide
    files from apply: .gitattributes files and submodules (gitlinks). At `commit`, or in the
    index and the untracked (even ignored) files when `commit` is None."""
    tops = list(tops)
    if commit is not None:
        listing = repo.git.ls_tree("-r", "-z", "--full-tree", commit, "--", *tops)
    else:
        listing = repo.git.ls_files("-z", "--stage", "--", *tops)
        others = repo.git.ls_files("-z", "--others", "--", *tops)
        listing += "".join(f"0 0 0\t{p}\0" for p in others.split("\0") if p)
    found = []
    for item in filter(None, listing.split("\0")):
        meta, path = item.split("\t", 1)
        if meta.split()[0] == "160000" or posixpath.basename(path) == ".gitattributes":
            found.append(path)
    return found


def read_entries(repo: git.Repo, commit: str, entries: list[TreeEntry]) -> list[SourceFile]:
    """The files of `entries` (from list_tree), with one cat-file."""
    return _sources(repo, commit, entries, cat_blobs(repo, _wanted(entries)))


class LaterFiles:
    """Files being read by a `git cat-file --batch` started beforehand: git writes the blobs
    while this process does other work (loads the policy), a thread taking its output. Use
    as a context manager: leaving it stops git if `files()` was never reached."""

    def __init__(self, repo: git.Repo, commit: str, entries: list[TreeEntry]) -> None:
        self.repo, self.commit, self.entries = repo, commit, entries
        self.shas = _wanted(entries)
        self.output: list[bytes] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None
        if not self.shas:
            return
        with tempfile.TemporaryFile() as names:  # the child keeps its own descriptor
            names.write("".join(s + "\n" for s in self.shas).encode())
            names.seek(0)
            self.proc = subprocess.Popen(
                ["git", "-C", str(repo.working_tree_dir or repo.git_dir), "cat-file",
                 "--batch"], stdin=names, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True, name="jitgrant-cat-file")
        self.reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        self.output.append(self.proc.stdout.read())

    def files(self) -> list[SourceFile]:
        if self.proc is None or self.reader is None:
            return read_entries(self.repo, self.commit, self.entries)
        self.reader.join()
        error = self.proc.stderr.read() if self.proc.stderr else b""
        if self.proc.wait() or not self.output:
            raise git.GitCommandError(["git", "cat-file", "--batch"], self.proc.returncode,
                                      error)
        return _sources(self.repo, self.commit, self.entries,
                        _parse_batch(self.output[0], self.shas))

    def __enter__(self) -> LaterFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.reader is not None:
            self.reader.join()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _wanted(entries: list[TreeEntry]) -> list[str]:
    return [sha for mode, sha, size, _ in entries if size <= MAX_FILE_BYTES or mode == "120000"]


def _sources(repo: git.Repo, commit: str, entries: list[TreeEntry],
             blobs: dict[str, bytes]) -> list[SourceFile]:
    return [_source(repo, commit, mode, sha, size, path, blobs)
            for mode, sha, size, path in entries]


def _source(repo: git.Repo, commit: str, mode: str, sha: str, size: int, path: str,
            blobs: dict[str, bytes]) -> SourceFile:
    if mode == "120000":
        return _follow_link(repo, commit, path, blobs[sha].decode("utf-8", "replace"))
    if size > MAX_FILE_BYTES:
        return oversized(path, sha, size)
    return SourceFile(path, blobs[sha], sha)


def oversized(path: str, sha: str, size: int) -> SourceFile:
    """A file over the size limit: reported, never read."""
    return SourceFile(path, None, sha, f"file is {size} bytes, over the limit of "
                                       f"{MAX_FILE_BYTES}")


def _follow_link(repo: git.Repo, commit: str, path: str, link: str) -> SourceFile:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
        return SourceFile(path, None, error="symlink leads outside the repository")
    try:
        line = repo.git.ls_tree("--long", commit, "--", resolved)
    except git.GitCommandError:
        line = ""
    parts = line.split()
    if len(parts) < 4 or parts[1] != "blob" or parts[0] == "120000":
        return SourceFile(path, None, error=f"symlink target {resolved} is not a file")
    if int(parts[3]) > MAX_FILE_BYTES:
        return SourceFile(path, None, error="symlink target is over the size limit")
    data = cat_blobs(repo, [parts[2]])[parts[2]]
    return SourceFile(path, data, parts[2])


def cat_blobs(repo: git.Repo, shas: list[str]) -> dict[str, bytes]:
    """Read many blobs through one `git cat-file --batch` process."""
    if not shas:
        return {}
    proc = subprocess.run(["git", "-C", str(repo.working_tree_dir or repo.git_dir), "cat-file",
                           "--batch"], input="".join(s + "\n" for s in shas).encode(),
                          capture_output=True, check=True)
    return _parse_batch(proc.stdout, shas)


def _parse_batch(out: bytes, shas: list[str]) -> dict[str, bytes]:
    """`git cat-file --batch` output for `shas`: sha -> content."""
    pos, result = 0, {}
    for _ in shas:
        end = out.index(b"\n", pos)
        sha, _kind, size = out[pos:end].split(b" ")
        start = end + 1
        result[sha.decode()] = out[start:start + int(size)]
        pos = start + int(size) + 1
    return result


def read_blobs(repo: git.Repo, files: list[tuple[str, str]]) -> list[SourceFile]:
    """(path, blob sha) pairs as SourceFiles, within read_tree's size limit: sizes are asked
    first, and a blob over the limit is reported, never read (a huge file pushed on anyone's
    branch would otherwise cost every reader its size many times over in memory)."""
    sizes = blob_sizes(repo, [sha for _, sha in files])
    blobs = cat_blobs(repo, [sha for _, sha in files if sizes[sha] <= MAX_FILE_BYTES])
    return [SourceFile(path, blobs[sha], sha) if sizes[sha] <= MAX_FILE_BYTES
            else oversized(path, sha, sizes[sha]) for path, sha in files]


def blob_sizes(repo: git.Repo, shas: list[str]) -> dict[str, int]:
    """Blob sha -> size in bytes, through one `git cat-file --batch-check`."""
    sizes = {}
    for line in _batch_check(repo, shas, "%(objectname) %(objectsize)"):
        sha, size = line.split(" ")
        sizes[sha] = int(size)
    return sizes


def _batch_check(repo: git.Repo, names: list[str], fmt: str) -> list[str]:
    """One `git cat-file --batch-check=fmt` line per object name (a sha, or commit:path),
    in one process."""
    if not names:
        return []
    proc = subprocess.run(["git", "--git-dir", str(repo.git_dir), "cat-file",
                           f"--batch-check={fmt}"],
                          input="".join(f"{n}\n" for n in names).encode(),
                          capture_output=True, check=True)
    return proc.stdout.decode("utf-8", "replace").splitlines()


@fast_init
@dataclass(frozen=True)
class _Commit:
    sha: str
    parents: tuple[str, ...]
    author: str
    email: str
    authored: datetime
    committed: datetime
    subject: str


def provenance(repo: git.Repo, commit: str, files: dict[str, str]) -> dict[str, Provenance]:
    """For each path -> blob at `commit`, the newest commit that wrote that blob to that path,
    and the merge (or squash) commit on the first-parent line that brought it. One `git log`.

    The answer is kept in .git/jitgrant/provenance.json. When the cached commit lies on the
    first-parent line of `commit` (the usual case: main moved on since the last run), only the
    commits since it are read, and files nobody wrote since keep their cached provenance."""
    cached = None if shallow_boundary(repo) else _cache_read(repo)
    if cached is not None and not _cache_usable(repo, cached[0], commit):
        cached = None
    result = _provenance_since(repo, commit, files, cached) if cached else None
    if result is None:
        result = _provenance_since(repo, commit, files, None)
        assert result is not None
    if cached is None or cached[0] != commit:
        _cache_write(repo, commit, files, result)
    return result


_CachedProvenance = tuple[str, dict[str, tuple[str, Provenance]]]


def _provenance_since(repo: git.Repo, commit: str, files: dict[str, str],
                      cached: _CachedProvenance | None) -> dict[str, Provenance] | None:
    """The provenance from the commits since the cached one (all commits without a cache);
    None when the cache cannot complete the answer, which the full walk then gives."""
    commits, wrote = _log(repo, commit, files, cached[0] if cached else None)
    if cached and not _first_parents_reach(commits, commit, cached[0]):
        return None  # the cached commit came in as a merged branch: arrivals would differ
    arrived = _arrivals(commits, commit)
    result = {}
    merges = {path: commits.get(arrived.get(sha, sha)) for path, sha in wrote.items()}
    numbers = _pr_numbers(repo, [m for m in merges.values() if m is not None])
    for path, sha in wrote.items():
        c, merge = commits[sha], merges[path]
        result[path] = Provenance(c.sha, c.author, c.email, c.authored, c.committed,
                                  merge.sha if merge else None,
                                  numbers[merge.sha] if merge else None,
                                  merge.committed if merge else None)
    if cached:
        for path, blob in files.items():
            old = cached[1].get(path)
            if path not in result and old and old[0] == blob:
                result[path] = old[1]
        if set(files) - set(result):
            return None  # a blob written before the cached commit yet absent from it
    return result


def _log(repo: git.Repo, commit: str, files: dict[str, str],
         since: str | None) -> tuple[dict[str, _Commit], dict[str, str]]:
    """Every commit in `commit` (minus `since` and its history), and path -> the newest of
    them that wrote the path's blob in `files`."""
    out = _log_raw(repo, [commit, *([f"^{since}"] if since else [])])
    commits: dict[str, _Commit] = {}
    wrote: dict[str, str] = {}  # path -> commit sha (newest first: first seen wins)
    for record in out.split("\x1e")[1:]:
        head, _, rest = record.partition("\0")
        c = _parse_header(head)
        commits[c.sha] = c
        tokens = rest.lstrip("\n").split("\0")
        for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
            fields = meta.split()
            if len(fields) >= 4 and files.get(path) == fields[3] and path not in wrote:
                wrote[path] = c.sha
    return commits, wrote


_LOG = ["log", "--topo-order", "--raw", "--no-abbrev", "--no-renames", "-z",
        "--format=%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%s"]
# From this many commits on, two `git log` processes share the history (see _log_raw).
SPLIT_LOG_FROM = 2000


def _log_raw(repo: git.Repo, revs: list[str]) -> str:
    """`git log --raw` of `revs`. git spends its time diffing each commit's trees, on one
    core; on a long history two processes each take a part, with --skip: the newest 30% of
    the commits and the rest. Newer commits cost more when grant folders grow (a folder of
    10,000 files over 10,000 commits: the newest third took 56% of the time)."""
    cmd = ["git", "--git-dir", str(repo.git_dir), *_LOG, *revs, "--"]
    count = int(repo.git.rev_list("--count", *revs)) if parallel.cores() > 1 else 0
    if count < SPLIT_LOG_FROM:
        return _run_git(cmd)
    newest = count * 3 // 10
    older = subprocess.Popen([*cmd[:-1], f"--skip={newest}", "--"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    outputs: list[tuple[bytes, bytes]] = []  # read while this thread runs the newest part
    reader = threading.Thread(target=lambda: outputs.append(older.communicate()))
    reader.start()
    try:
        first = _run_git([*cmd[:-1], f"--max-count={newest}", "--"])
    finally:
        reader.join()
    out, err = outputs[0] if outputs else (b"", b"no output")
    if older.returncode:
        raise UserError(f"git log failed: {err.decode(errors='replace').strip()}")
    return first + out.decode("utf-8", "replace")


def _run_git(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode:
        raise UserError(f"git log failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8", "replace")


def _first_parents_reach(commits: dict[str, _Commit], tip: str, ancestor: str) -> bool:
    sha: str | None = tip
    while sha in commits:
        parents = commits[sha].parents
        sha = parents[0] if parents else None
    return sha == ancestor


def _cache_usable(repo: git.Repo, cached: str, commit: str) -> bool:
    try:
        return cached == commit or _is_ancestor(repo, cached, commit)
    except UserError:
        return False  # the cached commit is gone (history rewritten and collected)


def _cache_path(repo: git.Repo) -> Path:
    return Path(str(repo.git_dir)) / "jitgrant" / "provenance.json"


def _cache_read(repo: git.Repo) -> _CachedProvenance | None:
    """The cached (commit, path -> (blob, provenance)), or None when missing or unreadable:
    the cache only ever saves time, a bad one is ignored."""
    try:
        data = json.loads(_cache_path(repo).read_text())
        if data.get("version") != _CACHE_VERSION:
            return None
        entries = {path: (blob, Provenance(c, a, e, datetime.fromisoformat(ad),
                                           datetime.fromisoformat(cd), m, pr,
                                           datetime.fromisoformat(md) if md else None))
                   for path, (blob, c, a, e, ad, cd, m, pr, md) in data["files"].items()}
        return str(data["commit"]), entries
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _cache_write(repo: git.Repo, commit: str, files: dict[str, str],
                 result: dict[str, Provenance]) -> None:
    entries = {path: [files[path], p.commit, p.author, p.author_email, p.authored.isoformat(),
                      p.committed.isoformat(), p.merge_commit, p.pull_request,
                      p.arrived.isoformat() if p.arrived else None]
               for path, p in result.items()}
    path = _cache_path(repo)
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".provenance-")
    except OSError:
        return  # a read-only .git: every run then reads the whole history, as without a cache
    try:
        with os.fdopen(fd, "w") as handle:
            # (json.dump writes chunk by chunk; one dumps is several times faster)
            handle.write(json.dumps({"version": _CACHE_VERSION, "commit": commit,
                                     "files": entries}))
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)


_CACHE_VERSION = 3  # 2: the arrival date was added; 3: GitLab's merge requests are read


def shallow_boundary(repo: git.Repo) -> frozenset[str]:
    """In a shallow clone, the boundary commits seem to add every file: their provenance is
    unknown, not theirs."""
    path = Path(str(repo.git_dir)) / "shallow"
    return frozenset(path.read_text().split()) if path.exists() else frozenset()


def _parse_header(head: str) -> _Commit:
    sha, parents, author, email, authored, committed, subject = head.split("\x1f", 6)
    return _Commit(sha, tuple(parents.split()), author, email, _iso_date(authored),
                   _iso_date(committed), subject)


def _iso_date(text: str) -> datetime:
    """A date git printed; one it could not print, or past year 9999 (a commit object written
    by hand), is the far future: a date in the future is refused, never trusted (validate)."""
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return _FAR


def _arrivals(commits: dict[str, _Commit], tip: str) -> dict[str, str]:
    """Map every commit to the first-parent-line commit that brought it in (itself if on it)."""
    mainline = []
    sha: str | None = tip
    while sha and sha in commits:
        mainline.append(sha)
        sha = commits[sha].parents[0] if commits[sha].parents else None
    arrived: dict[str, str] = {}
    for main in reversed(mainline):
        arrived[main] = main
        stack = list(commits[main].parents[1:])
        while stack:
            sha = stack.pop()
            if sha in arrived or sha not in commits:
                continue
            arrived[sha] = main
            stack.extend(commits[sha].parents)
    return arrived


def _pr_number(c: _Commit) -> int | None:
    m = _MERGE_PR.match(c.subject) or _SQUASH_PR.search(c.subject)
    return int(m.group(1)) if m else None


def _pr_numbers(repo: git.Repo, merges: list[_Commit]) -> dict[str, int | None]:
    """The pull request each first-parent commit merged: GitHub names it in the subject
    ("Merge pull request #12 from ...", "Title (#12)"); a GitLab merge commit (two parents) on
    the last "See merge request group/project!12" line of its message, read for those commits
    only, with one `git log`. A number is a claim only: approvals count when the forge reports
    this very commit as the merge (approvals.judge)."""
    found = {c.sha: _pr_number(c) for c in merges}
    ask = list(dict.fromkeys(c.sha for c in merges if found[c.sha] is None and
                             len(c.parents) > 1))
    if not ask:
        return found
    proc = subprocess.run(["git", "--git-dir", str(repo.git_dir), "log", "--no-walk=unsorted",
                           "--stdin", "-z", "--format=%H%x1f%B"],
                          input="".join(f"{sha}\n" for sha in ask).encode(),
                          capture_output=True, check=False)
    if proc.returncode:
        return found  # not known: no number, so no approval (never one borrowed)
    for record in proc.stdout.decode("utf-8", "replace").split("\0"):
        sha, sep, message = record.partition("\x1f")
        numbers = _GITLAB_MR.findall(message) if sep else []
        if numbers and sha.strip() in found:
            found[sha.strip()] = int(numbers[-1])
    return found


# The first-parent line, each commit diffed against its first parent: a merge or squash
# commit shows what its pull request changed as a whole.
_MAINLINE = ["log", "--first-parent", "--diff-merges=first-parent", "--raw", "--no-abbrev",
             "--no-renames", "-z", "--format=%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%s"]


@dataclass(frozen=True)
class MainlineChange:
    """A commit on the first-parent line that deleted or rewrote a file: the blob before."""

    path: str
    old_blob: str
    parent: str | None
    provenance: Provenance


def mainline_changes(repo: git.Repo, commit: str, top: str,
                     status: str = "DM") -> Iterator[MainlineChange]:
    """Newest first, the first-parent commits of `commit` that deleted (D) or modified (M)
    files under `top`, with the pull request each arrived with. One `git log` over the
    first-parent line only (a few commits per pull request, not the branches' history)."""
    cmd = [*_MAINLINE, f"--diff-filter={status}", commit, "--", f"{top}/"]
    records = [(_parse_header(head), rest) for head, _, rest in (
        r.partition("\0") for r in
        _run_git(["git", "--git-dir", str(repo.git_dir), *cmd]).split("\x1e")[1:])]
    numbers = _pr_numbers(repo, [c for c, _ in records])
    for c, rest in records:
        prov = Provenance(c.sha, c.author, c.email, c.authored, c.committed, c.sha,
                          numbers[c.sha])
        tokens = rest.lstrip("\n").split("\0")
        for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
            fields = meta.split()
            if len(fields) >= 5 and fields[4][:1] in status:
                yield MainlineChange(path, fields[2], c.parents[0] if c.parents else None,
                                     prov)


def commit_at_tag(root: Path, tag: str) -> str | None:
    """HEAD's commit when `root` is a clean checkout whose HEAD is `tag`; else None."""
    try:
        repo = git.Repo(root)
        head = repo.head.commit.hexsha
        tagged = repo.git.rev_parse(f"refs/tags/{tag}^{{commit}}")
        dirty = repo.is_dirty(untracked_files=False)
    except (git.GitError, ValueError, OSError):
        return None
    return head if head == tagged and not dirty else None


def identity(repo: git.Repo) -> str:
    reader = repo.config_reader()
    name = reader.get_value("user", "name", "")
    email = reader.get_value("user", "email", "")
    return f"{name} <{email}>" if name or email else "unknown"


def merge_base(repo: git.Repo, base: str, head: str | None) -> str:
    """Where `head` (HEAD when None) branched from `base`: what a pull request changes is
    measured from there, so commits that reached `base` since are not counted as its own."""
    tip = resolve(repo, head or "HEAD")
    try:
        return str(repo.git.merge_base(resolve(repo, base), tip))
    except git.GitCommandError:
        raise ConfigError(f"{base!r} and {head or 'HEAD'!r} have no common history") from None


def changed_since(repo: git.Repo, base: str, head: str | None) -> set[str]:
    """Paths the change from the merge base of `base` and `head` (the working tree when head
    is None) to `head` touches: a branch made from an older `base` owns only its own changes."""
    args = [merge_base(repo, base, head)] + ([resolve(repo, head)] if head else [])
    out = repo.git.diff("--name-only", "--no-renames", "-z", *args)
    changed = set(filter(None, out.split("\0")))
    if head is None:
        changed |= set(repo.untracked_files)
    return changed


def committer(repo: git.Repo) -> str:
    """Who commit_file commits as, 'name <email>': the environment's GIT_COMMITTER_*, else
    git's config, else jitgrant's own name (never 'unknown': the audit names its actor)."""
    env = {**_fallback_identity(repo), **os.environ}  # what commit_file gives git
    reader = repo.config_reader()
    name = env.get("GIT_COMMITTER_NAME") or str(reader.get_value("user", "name", ""))
    email = env.get("GIT_COMMITTER_EMAIL") or str(reader.get_value("user", "email", ""))
    return f"{name} <{email}>"


def _fallback_identity(repo: git.Repo) -> dict[str, str]:
    """jitgrant's own name for commits, where neither git's config nor the environment gives
    one (a bare CI runner)."""
    if identity(repo) != "unknown":
        return {}
    return {k: v for k, v in _DEFAULT_IDENTITY.items() if not os.environ.get(k)}


def commit_file(repo: git.Repo, rel_path: str, content: bytes, message: str) -> str:
    """Write one file and commit only it on the current branch; return the new commit sha."""
    return commit_files(repo, {rel_path: content}, message)


def commit_files(repo: git.Repo, files: dict[str, bytes], message: str,
                 remove: Iterable[str] = ()) -> str:
    """Write the files (and delete `remove`) and commit only them on the current branch;
    return the new commit."""
    for rel_path, content in files.items():
        target = Path(str(repo.working_tree_dir)) / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    env = _fallback_identity(repo)
    paths = sorted(files)
    gone = sorted(remove)
    try:
        if gone:  # sealed files of revoked logins (sealing.py)
            repo.git.rm("-q", "--cached", "--ignore-unmatch", "--", *gone)
            for rel_path in gone:
                (Path(str(repo.working_tree_dir)) / rel_path).unlink(missing_ok=True)
            paths = sorted(set(paths) | set(gone))
        if files:
            repo.git.add("--", *files)
        repo.git.commit("--only", "--no-verify", "-q", "-m", message, "--", *paths, env=env)
    except git.GitCommandError as exc:
        raise UserError(f"could not commit {', '.join(paths)}: {_git_message(exc)}") from None
    return str(repo.head.commit.hexsha)


# -- audit commits whose push was refused -----------------------------------------------------
# A CI runner is thrown away after the run, so an audit commit left on its local branch is
# lost. When the push to the branch is refused (a protected main), the commit goes to a
# branch of its own on origin, which the next run fetches: it carries the records it lacks
# into its own audit commit, and deletes the pending branches once that commit is on origin.
PENDING = "jitgrant/audit-pending"


def files_under(repo: git.Repo, commit: str, top: str,
                max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes]:
    """Regular files under `top` at `commit`, path -> bytes: one ls-tree and one cat-file.
    Files larger than `max_bytes` are left out unread (a hostile commit's huge blob)."""
    wanted = {path: sha for mode, sha, size, path in _blobs_under(repo, commit, [top])
              if mode in ("100644", "100755") and size <= max_bytes}
    blobs = cat_blobs(repo, sorted(set(wanted.values())))
    return {path: blobs[sha] for path, sha in wanted.items()}


def pending_commits(repo: git.Repo) -> list[str]:
    """The commits of origin's pending audit branches as last fetched (none without origin)."""
    out = str(repo.git.for_each_ref("--format=%(objectname)",
                                    f"refs/remotes/origin/{PENDING}/"))
    return out.split()


def keep_pending(repo: git.Repo, name: str) -> str | None:
    """Push HEAD to origin's branch jitgrant/audit-pending/<name>; None when that fails too."""
    branch = f"{PENDING}/{name}"
    try:
        repo.git.push("--quiet", "origin", f"HEAD:refs/heads/{branch}")
    except git.GitCommandError:
        return None
    return branch


def fetch_pending(repo: git.Repo) -> dict[str, str]:
    """origin's pending audit branches, branch name -> commit (none when origin has none)."""
    remote = f"refs/remotes/origin/{PENDING}/"
    try:
        repo.git.fetch("--quiet", "--no-tags", "--prune", "origin",
                       f"+refs/heads/{PENDING}/*:{remote}*")
    except git.GitCommandError:
        return {}  # no origin to fetch from: the push that follows says what is wrong
    out = repo.git.for_each_ref("--format=%(refname) %(objectname)", remote)
    return {ref.removeprefix("refs/remotes/origin/"): sha
            for ref, sha in (line.split() for line in out.splitlines())}


def missing_records(repo: git.Repo, commits: Iterable[str]) -> dict[str, bytes]:
    """The files under audit/ in these commits that HEAD does not have, with their bytes."""
    have = set(repo.git.ls_tree("-r", "--name-only", "-z", "HEAD", "--", "audit/")
               .split("\0"))
    wanted: dict[str, str] = {}
    for commit in commits:
        for line in repo.git.ls_tree("-r", "-z", commit, "--", "audit/").split("\0"):
            meta, _, path = line.partition("\t")
            if path and path not in have and meta.split()[1] == "blob":
                wanted.setdefault(path, meta.split()[2])
    blobs = cat_blobs(repo, list(wanted.values()))
    return {path: blobs[sha] for path, sha in wanted.items()}


def delete_pending(repo: git.Repo, branches: Iterable[str]) -> None:
    """Delete delivered pending branches on origin; a failure leaves them for the next run,
    which finds their records already on the branch and only deletes them."""
    names = sorted(branches)
    if names:
        with contextlib.suppress(git.GitCommandError):
            repo.git.push("--quiet", "origin", "--delete", *names)


# How long a push keeps trying while origin keeps moving. Shards (a CI matrix, several
# CronJobs) push to one branch at once: with eight of them, a push needed up to five rebases,
# and a loaded runner needs more. A record is worth two minutes of retrying.
PUSH_ATTEMPTS = 8
PUSH_BUDGET_SECONDS = 120.0
PUSH_PAUSE_CAP_SECONDS = 2.0


def push(repo: git.Repo, attempts: int = PUSH_ATTEMPTS,
         budget: float = PUSH_BUDGET_SECONDS) -> None:
    """Push the current branch to origin, never forcing. When the push is rejected because the
    branch moved on origin (another run's audit commit, a merged grant), fetch it, rebase our
    unpushed commits onto it and try again, a jittered pause between tries (growing to
    PUSH_PAUSE_CAP_SECONDS) so racing runs fall out of step. It gives up once it made at least
    `attempts` pushes and `budget` seconds have passed since the first: the count keeps a slow
    machine from giving up early, the time keeps many racing shards from giving up at all.

    Only jitgrant's own audit commits are ever rebased: when an unpushed commit is a merge or
    touches anything outside audit/, nothing is rebased; when the rebase stops (a conflict, a
    dirty working tree), it is aborted. Either way a UserError, and the audit commit stays on
    the local branch. A rejection that is not about origin moving fails at once."""
    branch = _branch(repo)
    upstream = f"refs/remotes/origin/{branch}"
    started = time.monotonic()
    error, attempt = "", 0
    while True:
        try:
            repo.git.push("--quiet", "origin", f"HEAD:refs/heads/{branch}")
            return
        except git.GitCommandError as exc:
            error = _git_message(exc)
        attempt += 1
        pause = min(PUSH_PAUSE_CAP_SECONDS, 0.1 * 2 ** (attempt - 1))
        time.sleep(random.uniform(min(0.05, pause), pause))
        _fetch(repo, branch, error)
        if _is_ancestor(repo, "HEAD", upstream):
            return  # already on origin: an earlier push landed though it reported an error
        if _is_ancestor(repo, upstream, "HEAD"):
            raise UserError(f"git push failed: {error}")  # not because origin moved: give up
        if attempt >= attempts and time.monotonic() - started >= budget:
            break
        _rebase_audit_commits(repo, upstream)
    raise UserError(f"git push failed {attempt} times while origin/{branch} kept moving "
                    f"({error}); the audit commit stays on the local branch {branch}")


def _branch(repo: git.Repo) -> str:
    try:
        return str(repo.active_branch.name)
    except TypeError:
        raise UserError("cannot push from a detached HEAD: check out the branch the audit "
                        "commit belongs on") from None


def _git_message(exc: git.GitCommandError) -> str:
    """git's stderr as one line, without GitPython's wrapping and git's hints."""
    text = str(exc.stderr).strip()
    if text.startswith("stderr: '") and text.endswith("'"):
        text = text[len("stderr: '"):-1]
    lines = [line.strip().removeprefix("error: ") for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(("hint:", "To "))]
    return one_line("; ".join(kept) or f"git exited with {exc.status}")


def _fetch(repo: git.Repo, branch: str, push_error: str) -> None:
    try:
        repo.git.fetch("--quiet", "--no-tags", "origin",
                       f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
    except git.GitCommandError as exc:
        raise UserError(f"git push failed: {push_error}; and fetching origin/{branch} failed: "
                        f"{_git_message(exc)}") from None


def _is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
    except git.GitCommandError as exc:
        if exc.status == 1:
            return False
        raise UserError(f"git merge-base failed: {_git_message(exc)}") from None
    return True


def _rebase_audit_commits(repo: git.Repo, upstream: str) -> None:
    """Replay our unpushed commits on `upstream`, only when they are all audit commits."""
    ours = f"{upstream}..HEAD"
    merges = repo.git.rev_list("--min-parents=2", ours).split()
    paths = set(filter(None, repo.git.log("--format=", "--name-only", "--no-renames", "-z",
                                          ours).split("\0")))
    foreign = sorted(p for p in paths if not p.startswith(("audit/", "sealed/")))
    if merges or foreign:
        what = f"merge commit {merges[0][:12]}" if merges else ", ".join(foreign[:3])
        raise UserError(f"origin moved, and the local branch has unpushed commits that are not "
                        f"audit commits ({one_line(what)}): not rebasing someone's work; push "
                        "or remove them, then push the audit commit")
    env = _fallback_identity(repo)
    try:
        repo.git.rebase("--quiet", "--no-autostash", "--no-verify", upstream, env=env)
    except git.GitCommandError as exc:
        if any((Path(str(repo.git_dir)) / d).exists() for d in ("rebase-merge", "rebase-apply")):
            repo.git.rebase("--abort")
        raise UserError(f"could not rebase the audit commit onto "
                        f"{upstream.removeprefix('refs/remotes/')}: "
                        f"{_git_message(exc)}; it stays on the local branch") from None


def init_repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path, initial_branch="main")
    return repo


def is_repository(path: Path) -> bool:
    """Whether `path` is the top of a git checkout (not merely inside one)."""
    try:
        git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def commit_all(repo: git.Repo, message: str, author: str, email: str) -> str:
    """Stage everything and commit as `author` (the demo's and tests' stand-in for a merge)."""
    env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email}
    repo.git.add("-A")
    repo.git.commit("-q", "--no-verify", "-m", message, env=env)
    return str(repo.head.commit.hexsha)


# -- the requester's branches: commits made beside the checkout, never in it ------------------


def author_email(repo: git.Repo) -> str | None:
    """The email git writes as the author of a commit here, exactly as git works it out
    ($GIT_AUTHOR_EMAIL, author.email, user.email with includeIf and per-repository settings,
    $EMAIL, ...): `git var GIT_AUTHOR_IDENT`. None when git has no email for a commit."""
    # Only the email is asked: a placeholder name keeps a missing user.name from failing it.
    name = {"GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME") or "jitgrant"}
    try:
        ident = str(repo.git.var("GIT_AUTHOR_IDENT", env=name))
    except git.GitCommandError:
        return None  # git would refuse to commit: no email configured nor auto-detected
    found = _IDENT_EMAIL.search(ident)
    return found.group(1) if found and found.group(1) else None


_IDENT_EMAIL = re.compile(r"<([^<>]*)> \d+ [+-]\d{4}$")


def uncommitted(repo: git.Repo, tops: Iterable[str]) -> list[str]:
    """Tracked files with changes (staged or not), and untracked files under `tops`."""
    tokens = repo.git.status("--porcelain=v1", "-z", "--untracked-files=no").split("\0")
    paths, skip = [], False
    for token in tokens:
        if skip or len(token) < 4:
            skip = False
            continue
        paths.append(token[3:])
        skip = token[0] in "RC"  # a rename or copy: its source path follows
    untracked = repo.git.ls_files("--others", "--exclude-standard", "-z", "--", *tops)
    return paths + [p for p in untracked.split("\0") if p]


def current_branch(repo: git.Repo) -> str | None:
    try:
        return str(repo.git.symbolic_ref("--short", "-q", "HEAD")).strip() or None
    except git.GitCommandError:
        return None  # detached HEAD


def branch_exists(repo: git.Repo, branch: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}")
    except git.GitCommandError:
        return False
    return True


def valid_branch_name(repo: git.Repo, branch: str) -> bool:
    try:
        repo.git.check_ref_format(f"refs/heads/{branch}")
    except git.GitCommandError:
        return False
    return True


def commit_to_new_branch(repo: git.Repo, branch: str, parent: str,
                         changes: dict[str, bytes | None], message: str) -> str:
    """One commit of `changes` (path -> content, None deletes) on top of `parent`, as the new
    branch `branch`; return its sha. Built with plumbing in a temporary index, so the checkout,
    the index and the working tree stay as they were. Refused when the branch exists."""
    with tempfile.TemporaryDirectory(prefix="jitgrant-index-") as tmp:
        env = {**os.environ, **_fallback_identity(repo),
               "GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _plumb(repo, env, "read-tree", parent)
        for path, content in changes.items():
            if content is None:
                _plumb(repo, env, "update-index", "--force-remove", "--", path)
            else:
                blob = _plumb(repo, env, "hash-object", "-w", "--stdin", stdin=content)
                _plumb(repo, env, "update-index", "--add", "--cacheinfo",
                       f"100644,{blob},{path}")
        tree = _plumb(repo, env, "write-tree")
        # commit-tree ignores commit.gpgSign; `git commit` would sign, so sign as it would.
        sign = ["-S"] if _config_true(repo, "commit.gpgsign") else []
        commit = _plumb(repo, env, "commit-tree", *sign, tree, "-p", parent, "-F", "-",
                        stdin=message.encode())
        # The empty old value makes git refuse when the branch appeared meanwhile.
        _plumb(repo, env, "update-ref", "-m", "jitgrant: new branch", f"refs/heads/{branch}",
               commit, "")
    return commit


def _config_true(repo: git.Repo, key: str) -> bool:
    try:
        return str(repo.git.config("--type=bool", "--get", key)).strip() == "true"
    except git.GitCommandError:
        return False


def delete_branch(repo: git.Repo, branch: str, sha: str) -> None:
    """Remove a branch we just made, only if it still points where we left it."""
    _plumb(repo, dict(os.environ), "update-ref", "-d", f"refs/heads/{branch}", sha)


def _plumb(repo: git.Repo, env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo.working_tree_dir or repo.git_dir), *args],
                          input=stdin, env=env, capture_output=True, check=False)
    if proc.returncode:
        text = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"git {args[0]} failed: {one_line('; '.join(text)) or proc.returncode}")
    return proc.stdout.decode().strip()


def push_branch(repo: git.Repo, branch: str) -> None:
    """Push a new branch to origin and track it there; never forcing."""
    try:
        repo.git.push("--quiet", "--set-upstream", "origin",
                      f"refs/heads/{branch}:refs/heads/{branch}")
    except git.GitCommandError as exc:
        raise UserError(f"git push of {branch} failed: {_git_message(exc)}") from None


def push_dry_run(path: Path) -> str | None:
    """Whether `apply --push` could push the current branch: None when `git push --dry-run`
    to origin succeeds, else why not (starting "no origin" when there is none). Nothing is
    sent: the remote is asked, no ref moves."""
    repo = open_repo(path)
    if "origin" not in [r.name for r in repo.remotes]:
        return "no origin: the audit commit stays local (apply --push needs one)"
    try:
        branch = _branch(repo)
    except UserError as exc:
        return str(exc)
    try:
        # --force: only in the dry run, so that origin having moved on (which apply --push
        # handles by rebasing) is not reported; access and a missing remote still are.
        repo.git.push("--dry-run", "--force", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    except git.GitCommandError as exc:
        return _git_message(exc)
    return None


# -- request branches (queue.py) --------------------------------------------------------------


@fast_init
@dataclass(frozen=True)
class RequestBranch:
    """A remote branch with commits under grants/ that the base does not have."""

    name: str  # without refs/remotes/<remote>/
    tip: str
    # The tip's committer date: whoever made the commit chose it (queue.py never trusts it
    # for more than a listing).
    committed: datetime
    files: tuple[tuple[str, str], ...]  # (path, blob sha) at the tip, of the grant files it touches
    removes: tuple[str, ...] = ()  # grant files the base has and the tip does not


def fetch_branches(repo: git.Repo, remote: str = "origin") -> str | None:
    """Bring the remote's branches up to date (pruning deleted ones); a message when that
    failed (the branches fetched before are then read as they are)."""
    try:
        repo.git.fetch("--quiet", "--no-tags", "--prune", remote,
                       f"+refs/heads/*:refs/remotes/{remote}/*")
    except git.GitCommandError as exc:
        return f"git fetch {remote} failed: {_git_message(exc)}"
    return None


def request_branches(repo: git.Repo, base: str, remote: str = "origin",
                     top: str = "grants/") -> list[RequestBranch]:
    """Every branch of `remote` with commits touching `top` that `base` lacks, in three git
    processes whatever the number of branches (for-each-ref, one log, one batch-check): a
    request queue of 1,000 branches must not cost 1,000 `git log`s. A commit on two branches
    is counted for one of them (git log --source)."""
    prefix = f"refs/remotes/{remote}/"
    out = repo.git.for_each_ref("--format=%(objectname) %(committerdate:unix) %(refname)",
                                prefix)
    tips: dict[str, tuple[str, datetime]] = {}
    for line in out.splitlines():
        sha, when, ref = line.split(" ", 2)
        # A name that is not UTF-8 (lone surrogates: not printable) is no request branch:
        # it could not be passed to git or printed.
        if not ref.endswith("/HEAD") and ref.isprintable():
            tips[ref] = (sha, _unix_date(when))
    if not tips:
        return []
    base_sha = resolve(repo, base)
    touched = _touched(repo, list(tips), base_sha, top)
    wanted = [(ref, path) for ref in sorted(touched) for path in sorted(touched[ref])]
    blobs = _blobs_at(repo, [(tips[ref][0], path) for ref, path in wanted])
    on_base = _blobs_at(repo, [(base_sha, path) for _, path in wanted])
    files: dict[str, list[tuple[str, str]]] = {}
    removes: dict[str, list[str]] = {}
    for (ref, path), blob, merged in zip(wanted, blobs, on_base, strict=True):
        # The base's blob: merged already (squashed or rebased), so it asks for nothing.
        if blob is not None and blob != merged:
            files.setdefault(ref, []).append((path, blob))
        elif blob is None and merged is not None:
            removes.setdefault(ref, []).append(path)
    return [RequestBranch(ref.removeprefix(prefix), tips[ref][0], tips[ref][1],
                          tuple(files.get(ref, ())), tuple(removes.get(ref, ())))
            for ref in sorted(set(files) | set(removes))]


# A commit date git cannot show or Python cannot hold (its author wrote the commit object):
# read as the farthest future, which the queue ages as now.
_FAR = datetime(9999, 12, 31, tzinfo=timezone.utc)


def _unix_date(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(text), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return _FAR


def _touched(repo: git.Repo, refs: list[str], base: str, top: str) -> dict[str, set[str]]:
    """ref -> paths under `top` that its commits not in `base` touch, by one git log
    reading the refs from stdin (a branch name is never an argument: it may begin with -)."""
    cmd = ["git", "--git-dir", str(repo.git_dir), "log", "--stdin", "--source", "--no-merges",
           "--no-renames", "--diff-filter=AMD", "--name-only", "-z", "--format=%x01%S", "--",
           top]
    proc = subprocess.run(cmd, input=("".join(f"{r}\n" for r in refs) + f"^{base}\n").encode(),
                          capture_output=True, check=False)
    if proc.returncode:
        raise UserError("git log of the request branches failed: "
                        f"{one_line(proc.stderr.decode('utf-8', 'replace'))}")
    touched: dict[str, set[str]] = {}
    # A name that is not UTF-8 keeps its bytes as lone surrogates: not printable, so dropped
    # below (a branch's file name must not stop the queue for every other request).
    for record in proc.stdout.decode("utf-8", "surrogateescape").split("\x01")[1:]:
        ref, _, names = record.partition("\0")  # "<ref>\0\n<path>\0<path>\0"
        paths = set(names.removeprefix("\n").split("\0"))
        # A name with a control character is no grant file (and would break the batch's lines).
        touched.setdefault(ref, set()).update(
            p for p in paths if p.startswith(top) and p.isprintable())
    return touched


def _blobs_at(repo: git.Repo, specs: list[tuple[str, str]]) -> list[str | None]:
    """The blob sha of each (commit, path), None where the path is missing, in one process."""
    lines = _batch_check(repo, [f"{c}:{p}" for c, p in specs], "%(objectname) %(objecttype)")
    return [line.split(" ")[0] if line.endswith(" blob") else None for line in lines]


def written_by(repo: git.Repo, commit: str, files: dict[str, str]) -> dict[str, Provenance]:
    """As `provenance` (path -> blob at `commit`: the newest commit that wrote it, and the
    first-parent commit that brought it), for files other than grants: neither read from nor
    kept in the grants' provenance cache."""
    found = _provenance_since(repo, commit, files, None)
    assert found is not None  # without a cache the walk always completes
    return found


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is in the history of `descendant` (a commit is its own ancestor);
    False when git does not know either commit."""
    try:
        return _is_ancestor(repo, ancestor, descendant)
    except UserError:
        return False
