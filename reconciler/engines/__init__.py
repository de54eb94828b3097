"""Engine registry: one module per kind of server, all of its SQL in that module."""

from __future__ import annotations

from .base import ActionResult, Engine, Session, Statement
from .mysql import MysqlEngine
from .postgres import PostgresEngine

ENGINES: dict[str, Engine] = {"postgres": PostgresEngine(), "mysql": MysqlEngine()}

__all__ = ["ENGINES", "ActionResult", "Engine", "Session", "Statement"]
