"""Fault tests: real servers, a namespace of their own per test (see tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.schemas import validator
from tests.integration.conftest import world  # noqa: F401 - the `world` fixture
from tests.integration.test_least_privilege import lp_world  # noqa: F401 - a fixture
from tests.integration.conftest import my  # noqa: F401 - the `my` fixture


def audit_record(repo: Path, output: str) -> dict[str, Any]:
    """The audit record apply reported writing, checked against schema/audit.schema.json."""
    assert "audit record: " in output, output
    rel = output.rsplit("audit record: ", 1)[1].split()[0]
    record: dict[str, Any] = json.loads((repo / rel).read_text())
    errors = [e.message for e in validator("audit").iter_errors(record)]
    assert errors == [], errors
    return record
