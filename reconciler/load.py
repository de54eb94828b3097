"""Read the access repository's YAML from a git commit or a folder, keeping file and line."""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem
from .fastinit import fast_init
from .timeutil import UTC_SECONDS

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32
YAML_SUFFIXES = (".yaml", ".yml")
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR, _MAP_TAG, _SEQ_TAG = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:map",
                            "tag:yaml.org,2002:seq")
# First characters for which YAML 1.1 has an implicit type (int, bool, null, timestamp, ...).
_TYPED_FIRST = frozenset(yaml.resolver.Resolver.yaml_implicit_resolvers)


class _Loader(_Base):  # type: ignore[misc]
    """The C safe loader, with the answer to the commonest question short-cut: a plain scalar
    whose first character starts no implicit type is a string. Same result, a Python call less
    per value."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode:
            if implicit[0] and value and value[0] not in _TYPED_FIRST:
                return _STR
        elif kind is yaml.MappingNode:
            return _MAP_TAG
        elif kind is yaml.SequenceNode:
            return _SEQ_TAG
        return super().resolve(kind, value, implicit)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's, as libyaml counts lines
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_AS_TEXT = frozenset({_TIMESTAMP, "tag:yaml.org,2002:str"})


@fast_init
@dataclass(frozen=True)
class SourceFile:
    """One file as read from a commit or the working tree; `error` when it cannot be read."""

    path: str
    data: bytes | None
    blob: str | None = None  # git blob sha of the content
    error: str | None = None


@dataclass
class Document:
    """Parsed YAML plus the line of every key and list item, by path."""

    path: str
    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line(self, *keys: Any) -> int:
        """Line of the deepest existing prefix of `keys` (1 for the document itself)."""
        for end in range(len(keys), 0, -1):
            found = self.lines.get(tuple(keys[:end]))
            if found:
                return found
        return 1


class YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def blob_sha(data: bytes) -> str:
    """The git blob id of `data`, to tell whether a working-tree file differs from a commit."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


def parse_yaml(source: SourceFile) -> Document:
    """Parse one file safely; raise YamlProblem with a line on anything unusable."""
    if source.error:
        raise YamlProblem(1, source.error)
    assert source.data is not None
    text = _decode(source.data)
    return (parse_flat(source.path, text) or parse_block(source.path, text)
            or parse_full(source.path, text))


def parse_full(path: str, text: str) -> Document:
    """Any YAML, through the C safe loader and our checks."""
    too_deep = _too_deep(text)
    if too_deep is not None:
        raise YamlProblem(too_deep, f"nested more than {MAX_DEPTH} levels deep")
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = min(mark.line + 1, _last_line(text)) if mark else 1
        raise YamlProblem(line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids: no mark, only the code
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        line = len(_LINE_BREAK.split(text[: max(text.find(chr(code)), 0)]))
        raise YamlProblem(line, f"invalid YAML: the character U+{code:04X} is not "
                                "allowed") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem(1, "invalid YAML: nested too deeply") from None
    if node is None:
        raise YamlProblem(1, "the file is empty")
    doc = Document(path, None)
    try:
        doc.data = _convert(node, (), doc.lines, set(), 0)
    except YamlProblem as exc:
        if exc.message.startswith("YAML aliases"):
            raise YamlProblem(_first_alias_line(text), exc.message) from None
        raise
    return doc


def _last_line(text: str) -> int:
    """The number of the last line, as an editor counts: libyaml puts an error at the end of
    the input on the line after it."""
    lines = _LINE_BREAK.split(text)
    return max(1, len(lines) - (lines[-1] == ""))


# libyaml composes by recursion in C, and looks back over every open flow level for each token:
# some 40,000 nested `[` (80 KB) crash the process, and a megabyte of them takes minutes. A
# document nests at most one level per `[` or `{` plus two per column of its longest line; when
# that bound is not small, its events (which cost the same at any depth) are walked first, up to
# the first level too deep to compose.
_SAFE_DEPTH = 1000
_LONG_LINE = re.compile(r"[^\n]{250}")  # a line of _SAFE_DEPTH // 4 characters
# A flow collection opened and closed on one line, with no bracket, quote or comment between,
# nests nothing: all of them together add at most one level (`groups: [sre]` 10,000 times).
_FLAT_PAIR = re.compile(r"\[[^\[\]{}\n'\"#]*\]|\{[^\[\]{}\n'\"#]*\}")


def _too_deep(text: str) -> int | None:
    """The line of the first node nested deeper than MAX_DEPTH when the document nests deeper
    than can safely be composed; None when composing is safe."""
    opens = text.count("[") + text.count("{")
    if opens >= _SAFE_DEPTH // 2:
        flat = _FLAT_PAIR.sub("", text)
        opens = flat.count("[") + flat.count("{") + 1
    if opens < _SAFE_DEPTH // 2 and not _LONG_LINE.search(text):
        return None
    return _first_too_deep(text)


def _first_too_deep(text: str, again: bool = True) -> int | None:
    depth, first = 0, None
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.NodeEvent):
                if depth > MAX_DEPTH and first is None:
                    first = event.start_mark.line + 1 if event.start_mark else 1
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > _SAFE_DEPTH:
                        return first
    except yaml.MarkedYAMLError as exc:
        # libyaml's scanner reads ahead, so an error (PyYAML 6.0.4 has a nesting limit of its
        # own, in its own words) can come before the events that precede it: walk the text up
        # to the error once more to find the first level too deep.
        mark = exc.problem_mark
        if first is None and again and mark is not None and 0 < mark.index < len(text):
            return _first_too_deep(text[:mark.index], again=False)
        return first
    except yaml.YAMLError:
        return first
    # Otherwise composing meets the same error at the same place, at a safe depth.
    return None


# A flat file of `key: value` lines, the shape of nearly every grant file. The key is a word
# of ASCII letters, digits and _ (not starting with a digit); the value must be a plain scalar:
# it starts with a letter or digit and holds no quote, comment, flow or other indicator, and no
# ": " that could open a mapping, nor ends with a space or a colon.
_MAX_KEY = 1024  # libyaml's limit for a simple key (`key: value` on one line)
_FLAT_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/+=$*():-]*")
_RESOLVER = yaml.resolver.Resolver()


def _resolve_plain(value: str) -> str:
    return str(_RESOLVER.resolve(yaml.ScalarNode, value, (True, False)))  # type: ignore[no-untyped-call]


def parse_flat(path: str, text: str) -> Document | None:
    """The same Document the full loader would give for a flat file of plain string values,
    without building YAML nodes; None for anything else, which the full loader then reads."""
    data: dict[str, str] = {}
    lines: dict[tuple[Any, ...], int] = {}
    number = 0
    for line in text.split("\n"):
        number += 1
        if not line or line[0] == "#":
            if line.isprintable():
                continue
            return None
        key, sep, value = line.partition(": ")
        if (not sep or len(key) > _MAX_KEY or not key.isidentifier() or not key.isascii()
                or key in data or _FLAT_VALUE.fullmatch(value) is None or ": " in value
                or value[-1] in " :"):
            return None
        # (a timestamp as jitgrant writes it resolves to text: known without the resolver,
        # which tries int and float first)
        if value[0] in _TYPED_FIRST and UTC_SECONDS.fullmatch(value) is None \
                and _resolve_plain(value) not in _AS_TEXT:
            return None  # YAML would type it (a number, a boolean, null...): let it
        data[key] = value
        lines[(key,)] = number
    return Document(path, data, lines) if data else None


# Block mappings and lists of plain scalars, the shape of a policy file of 10,000 people, where
# composing YAML nodes costs a third of a second. A value is a plain scalar as above (a few more
# characters allowed inside: block context), a flow list of plain words, or nothing, when a deeper
# mapping or `- item` list follows. A trailing ` # comment` is dropped, as YAML drops it.
_BLOCK_VALUE = r"[A-Za-z0-9](?:[A-Za-z0-9 ._/+=$*()@,'\"!?%&;~<>-]|:(?! ))*(?<![ :])"
_BLOCK_LINE = re.compile(
    r"( *)(?:- (" + _BLOCK_VALUE + r")|([A-Za-z0-9_][A-Za-z0-9_.-]*):"
    r"(?: (?:(" + _BLOCK_VALUE + r")|\[ *((?:[A-Za-z0-9][A-Za-z0-9._@/+-]*"
    r"(?: *, *[A-Za-z0-9][A-Za-z0-9._@/+-]*)*)?) *\]))?)")
_OTHER_BREAKS = re.compile("[\r\x85\u2028\u2029\t]")


def parse_block(path: str, text: str) -> Document | None:
    """The same Document the full loader would give for nested block mappings and lists of
    plain scalars, without building YAML nodes; None for anything else (the full loader then
    reads it, and reports what is wrong with it)."""
    try:
        return _parse_block(path, text)
    except _NotBlock:
        return None


def _parse_block(path: str, text: str) -> Document | None:
    if _OTHER_BREAKS.search(text):
        return None
    root: dict[str, Any] = {}
    lines: dict[tuple[Any, ...], int] = {}
    # The open mappings and lists, outermost first, each as (indent, container, path); the
    # innermost one is also kept in `depth`, `container`, `at`.
    stack: list[tuple[int, Any, tuple[Any, ...]]] = [(0, root, ())]
    depth: int = 0
    container: Any = root
    at: tuple[Any, ...] = ()
    pending: str | None = None  # the `key:` of `container` whose value follows, deeper
    number = 0
    for number, line in enumerate(text.split("\n"), start=1):
        m = _BLOCK_LINE.fullmatch(line)
        if m is None:
            stripped = line.lstrip(" ")
            if not stripped:
                continue
            if stripped[0] == "#":
                if not stripped.isprintable():
                    return None
                continue
            cut = line.find(" #")
            if cut < 0 or not line.isprintable():
                return None
            line = line[:cut].rstrip(" ")
            if not line:
                continue
            m = _BLOCK_LINE.fullmatch(line)
            if m is None:
                return None
        indent, item, key, value, flow = m.groups()
        if key is not None and len(key) > _MAX_KEY:
            return None
        if pending is not None:
            if len(indent) <= depth:
                return None  # `key:` with nothing under it is null; let YAML say so
            child: Any = [] if item is not None else {}
            container[pending] = child
            depth, container, at = len(indent), child, at + (pending,)
            stack.append((depth, container, at))
            if len(stack) > MAX_DEPTH:
                return None
            pending = None
        elif len(indent) != depth:
            while stack[-1][0] > len(indent):
                stack.pop()
                if not stack:
                    return None
            depth, container, at = stack[-1]
            if depth != len(indent):
                return None
        if item is not None:
            if container.__class__ is not list:
                return None
            lines[at + (len(container),)] = number
            container.append(item if item[0] not in _TYPED_FIRST else _block_scalar(item, number))
            continue
        if container.__class__ is not dict or key in container:
            return None
        lines[at + (key,)] = number
        if value is not None:
            container[key] = (value if value[0] not in _TYPED_FIRST
                              else _block_scalar(value, number))
        elif flow is not None:
            if len(stack) + 1 > MAX_DEPTH:  # its items are one level deeper
                return None
            items = [i.strip(" ") for i in flow.split(",")] if flow else []
            for index in range(len(items)):
                lines[at + (key, index)] = number
            container[key] = [_block_scalar(i, number) for i in items]
        else:
            container[key] = None  # until the deeper lines fill it
            pending = key
    if pending is not None or not lines:
        return None
    return Document(path, root, lines)


def _block_scalar(value: str, line: int) -> Any:
    if value[0] not in _TYPED_FIRST:
        return value
    tag = _resolve_plain(value)
    if tag in _AS_TEXT:
        return value
    try:
        return _scalar(yaml.ScalarNode(tag, value), line)
    except YamlProblem:
        # `0b_`, or 5,000 digits: the full loader reports it, unless an error further down
        # the file comes first there (it reads the whole document before building values)
        raise _NotBlock from None


class _NotBlock(Exception):
    """parse_block's way out from inside a value: the full loader must read this file."""


def _first_alias_line(text: str) -> int:
    """Where the first `*alias` is written (composed nodes only know their anchor's line)."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
            return int(event.start_mark.line) + 1
    return 1


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # also UTF-32's
        raise YamlProblem(1, "the file is UTF-16 or UTF-32, not UTF-8")
    if b"\0" in data:
        raise YamlProblem(1, "the file contains a NUL byte")
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise YamlProblem(data[: exc.start].count(b"\n") + 1, "the file is not UTF-8") from None


def _convert(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
             seen: set[int], depth: int) -> Any:
    line = node.start_mark.line + 1
    if id(node) in seen:
        raise YamlProblem(line, "YAML aliases (*name) are not allowed")
    seen.add(id(node))
    if depth > MAX_DEPTH:
        raise YamlProblem(line, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in (_MAP, _SEQ):
        raise YamlProblem(line, f"unsupported YAML tag {node.tag!r}")
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, lines, seen, depth)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, child in enumerate(node.value):
            lines[path + (index,)] = child.start_mark.line + 1
            items.append(_convert(child, path + (index,), lines, seen, depth + 1))
        return items
    return _scalar(node, line)


def _convert_mapping(node: yaml.MappingNode, path: tuple[Any, ...],
                     lines: dict[tuple[Any, ...], int], seen: set[int], depth: int) -> Any:
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise YamlProblem(line, "keys must be plain strings (no merge keys or complex keys)")
        key = str(key_node.value)
        if key in result:
            raise YamlProblem(line, f"duplicate key {key!r}")
        lines[path + (key,)] = line
        result[key] = _convert(value_node, path + (key,), lines, seen, depth + 1)
    return result


def _scalar(node: yaml.Node, line: int) -> Any:
    # Timestamps stay strings: we parse them ourselves to insist on a zone. Plain strings, most
    # of every file, need no constructor.
    if node.tag in _AS_TEXT:
        return str(node.value)
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(line, f"invalid YAML: {problem}") from None
    except (ValueError, OverflowError, IndexError, KeyError) as exc:
        # `!!int abc`, `!!bool maybe`, `!!float ''`, or more digits than int() takes
        value, kind = repr(str(node.value)), str(node.tag).rsplit(":", 1)[-1]
        message = f"{value if len(value) <= 60 else value[:57] + '...'} is not a valid {kind}"
        if "integer string conversion" in str(exc):  # Python's advice is not for the author
            message = f"a number of {len(str(node.value))} characters is too long"
        raise YamlProblem(line, f"invalid value: {message}") from None


def to_problem(source: SourceFile, exc: YamlProblem) -> Problem:
    return Problem(source.path, exc.line, exc.message)


def read_folder(root: Path, tops: Iterable[str]) -> list[SourceFile]:
    """The YAML files below `tops` in a working tree, refusing links that leave the repository."""
    root = root.resolve()
    files: list[SourceFile] = []
    for top in tops:
        base = root / top
        if base.is_symlink() and not _inside(root, base):
            files.append(SourceFile(top, None, error="symlink leads outside the repository"))
            continue
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(YAML_SUFFIXES):
                    files.append(_read_one(root, Path(dirpath) / name))
    return files


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # a loop, or a dangling link
        return False


def _read_one(root: Path, path: Path) -> SourceFile:
    rel = path.relative_to(root).as_posix()
    if path.is_symlink():
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            return SourceFile(rel, None, error="cannot read: the symlink leads nowhere")
        except (OSError, RuntimeError):
            return SourceFile(rel, None, error="cannot read: symlink loop")
        if not real.is_relative_to(root):
            return SourceFile(rel, None, error="symlink leads outside the repository")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return SourceFile(rel, None, error="not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            return SourceFile(rel, None, error=f"file is {info.st_size} bytes, over the limit "
                                                 f"of {MAX_FILE_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        return SourceFile(rel, None, error=f"cannot read: {exc.strerror}")
    return SourceFile(rel, data, blob=blob_sha(data))
