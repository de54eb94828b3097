"""Engine registry: one module per kind of server, all of its SQL in that module. An engine's
module (and its database driver) is imported when a target of its kind is first planned."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .base import ActionResult, Engine, Session, Statement

_WHERE = {"postgres": ("postgres", "PostgresEngine"), "mysql": ("mysql", "MysqlEngine")}


class _Registry(Mapping[str, Engine]):
    def __init__(self) -> None:
        self._made: dict[str, Engine] = {}

    def __getitem__(self, kind: str) -> Engine:
        if kind not in self._made:
            module, name = _WHERE[kind]  # KeyError: no such engine
            cls = getattr(importlib.import_module(f".{module}", __package__), name)
            self._made[kind] = cls()
        return self._made[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


ENGINES: Mapping[str, Engine] = _Registry()

__all__ = ["ENGINES", "ActionResult", "Engine", "Session", "Statement"]
