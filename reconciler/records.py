"""Reading the newest audit records cheaply: newest first without listing every day's files,
and each only as far as its actions (audit.to_json puts everything else before them)."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

# Where audit.to_json starts a record's actions: the head (times, targets, follow-ups,
# sessions) of a record of 10,000 actions is a few lines, its actions megabytes.
_ACTIONS = b'\n  "actions": ['


def newest_first(folder: Path) -> Iterator[Path]:
    """The records under folder/YYYY/MM/DD/, newest first."""
    for year in _descending(folder):
        for month in _descending(year):
            for day in _descending(month):
                yield from sorted(day.glob("*.json"), reverse=True)


def newest(folder: Path, limit: int, read: Callable[[Path], Any] | None = None
           ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, record) of the newest `limit` records under folder, each read by `read` (by
    default only up to its actions); one that cannot be read, or is no JSON object, is skipped
    and still counts toward the limit (no reason to stop a run)."""
    for path in islice(newest_first(folder), limit):
        try:
            data = (read or read_head)(path)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            yield path, data


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a record's list field; nothing when the field is not a list."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _descending(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True)


def read_head(path: Path) -> Any:
    """The record with an empty list of actions, read only up to them; the whole record when
    it has no actions line where to_json writes one."""
    head = b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            head += chunk
            if _ACTIONS in head[-len(chunk) - len(_ACTIONS):]:
                break
    at = head.find(_ACTIONS)
    if at == -1:
        return json.loads(head)
    return json.loads(head[:at] + b'\n  "actions": []\n}')
