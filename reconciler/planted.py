"""What a revoked login leaves behind, in words: the objects it created, as the audit lists
them, and the dollar quote that keeps a name inside a DO block. Pure: no driver, no I/O."""

from __future__ import annotations

from collections.abc import Sequence


def dollar_quote(body: str) -> str:
    """`body` between dollar quotes whose tag first occurs where the quote ends: a login's
    name is written into the body as a literal, and a hostile name may hold `$jitgrant$`."""
    tag, n = "$jitgrant$", 0
    while (body + tag).find(tag) != len(body):
        n += 1
        tag = f"$jitgrant{n}$"
    return tag + body + tag


def describe(label: str, name: str, grantees: Sequence[str], secdef: bool) -> str:
    """One object as the audit lists it, e.g. `view scratch.leak (granted to PUBLIC, revoked)`.
    `name` is as the server quotes it."""
    notes = []
    if grantees:
        notes.append("granted to " + ", ".join(grantees) + ", revoked")
    if secdef:
        notes.append("SECURITY DEFINER, made SECURITY INVOKER")
    return f"{label} {name}" + (f" ({'; '.join(notes)})" if notes else "")
