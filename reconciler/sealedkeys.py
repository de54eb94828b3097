"""people.<handle>.keys checked at validate time: each key parses as a recipient, the list is
not absurdly long, and a private key pasted by mistake is refused loudly, never echoed."""

from __future__ import annotations

from collections.abc import Callable

from .sealed import KEYS_LIMIT, key_problem


def check_keys(handle: str, keys: list[str], line: Callable[[int], int],
               report: Callable[[int, str], None]) -> tuple[str, ...]:
    """The usable keys; a problem reported (at its line) for each one that is not, and for a
    list longer than KEYS_LIMIT (then none is kept: a sealed grant for them is refused)."""
    if len(keys) > KEYS_LIMIT:
        report(line(0), f"people.{handle}.keys: {len(keys)} keys; at most {KEYS_LIMIT}")
        return ()
    kept = []
    for index, key in enumerate(keys):
        why = key_problem(key)
        if why is None:
            kept.append(key.strip())
        else:
            report(line(index), f"people.{handle}.keys[{index}]: {why}")
    return tuple(kept)
