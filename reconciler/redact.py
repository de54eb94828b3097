"""The one scrubbing of secrets: every message that can reach a terminal, a log or the audit
(a driver's error, an internal error's repr, a traceback) passes through here.

A DSN's password can show up in many forms: as written, percent-decoded, or escaped by a repr
('\\u20ac', b'\\xff'). Each DSN jitgrant reads is remembered here, so that the last line of
defence (clicommon, apply's internal errors) can mask what it never parsed itself."""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote, unquote_to_bytes

MASKED = "********"
WITHHELD = "message withheld: it would show part of a DSN's password"
_KEYWORD_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:?/+")  # also postgres:/ and postgresql//
_WORD = "A-Za-z0-9"

_known: set[str] = set()
_known_lock = threading.Lock()  # prefetch threads connect (and so remember) concurrently


def dsn_secrets(dsn: str, parsed_password: str | None = None) -> tuple[str, ...]:
    """What of a DSN must never reach a message: the DSN itself and its password, in every
    form a message may quote them. The password is also dug out of a DSN the driver could not
    parse (a leading space, quotes, `postgres:/`), since that is when drivers quote it.
    Longest first, so a longer secret is masked before a part of it. Remembered for redact()."""
    found = {dsn, dsn.strip(), parsed_password or ""}
    for token in dsn.split():
        token = token.strip("'\"")
        userinfo, at, _ = token.rpartition("@")
        if at and _SCHEME.match(userinfo):
            _, colon, password = _SCHEME.sub("", userinfo, count=1).partition(":")
            found.add(password if colon else "")
    for match in _KEYWORD_PASSWORD.finditer(dsn):
        value = match.group(1)
        found |= {value, value.strip("'").replace("\\'", "'").replace("\\\\", "\\")}
    found = {form for s in found if s for form in _forms(s)}
    secrets = tuple(sorted((s for s in found if s), key=len, reverse=True))
    with _known_lock:
        _known.update(secrets)
    return secrets


def _forms(secret: str) -> set[str]:
    """`secret` as written and percent-decoded (as UTF-8 and as bytes), each also as a repr
    escapes it: an exception's repr quotes a str with \\u escapes (ascii) or without (repr),
    and bytes with \\x escapes."""
    decoded = {secret, unquote(secret), unquote(secret, encoding="latin-1")}
    raw = {unquote_to_bytes(secret), secret.encode("utf-8", "surrogatepass")}
    out = {text for s in decoded for text in (s, ascii(s)[1:-1], repr(s)[1:-1])}
    out |= {repr(b)[2:-1] for b in raw}
    return {s for s in out if s}


def scrub(text: str, hide: tuple[str, ...]) -> str:
    """`text` with every secret of `hide` masked where it stands as a token of its own. A
    secret that is left inside a longer word (a short password within 'unexpectedly') would
    show in the garbled word around the mask, so then the whole text is withheld."""
    masked = _masked(text, hide)
    return WITHHELD if masked is None else masked


def _masked(text: str, hide: tuple[str, ...]) -> str | None:
    for secret in hide:
        if secret in text:
            token = re.compile(f"(?<![{_WORD}]){re.escape(secret)}(?![{_WORD}])")
            text = token.sub(MASKED, text)
    return None if any(secret in text for secret in hide) else text


def scrubbed_line(text: str, hide: tuple[str, ...], fallback: str) -> str:
    """A driver's message on one line with the DSN's secrets masked, before and after the
    whitespace is folded (a password may contain some); `fallback` when nothing is left, and
    `fallback` with a note when the message cannot be masked without showing a secret."""
    first = _masked(text, hide)
    folded = None if first is None else _masked(" ".join(first.split()), hide)
    if folded is None:
        return f"{fallback} ({WITHHELD})"
    return folded or fallback


def redact(text: str) -> str:
    """`text` with the secrets of every DSN read so far masked (see scrub)."""
    with _known_lock:
        hide = tuple(sorted(_known, key=len, reverse=True))
    return scrub(text, hide) if hide else text
