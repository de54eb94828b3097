"""A record under audit/ can carry a lone surrogate as a JSON escape (`"\\ud800"`): any pull
request can add a file there, and a database user chooses their client's application name. No
view of the trail may crash on it (exit 3) or hide the rest: the character is shown as U+FFFD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo
from tests.report_trail import MALLORY_FILE, write_trail


def poisoned_trail(root: Path) -> None:
    write_trail(root)
    for record in sorted((root / "audit").rglob("*.json")):
        text = record.read_text()
        if '"client": "' in text:
            record.write_text(text.replace('"client": "', '"client": "\\ud800', 1))
            return
    raise AssertionError("the trail has no session with a client")


@pytest.mark.parametrize("args", [["--format", "json"], ["--format", "csv"],
                                  ["--format", "table"], ["--format", "html"],
                                  ["--view", "actions", "--format", "json"],
                                  ["--view", "actions", "--format", "csv"],
                                  ["--grant", MALLORY_FILE], ["--grant", MALLORY_FILE,
                                                              "--format", "json"]])
def test_a_lone_surrogate_in_a_record_is_shown_not_fatal(tmp_path: Path,
                                                         args: list[str]) -> None:
    repo = AccessRepo(tmp_path / "repo")
    poisoned_trail(repo.root)
    result = jitgrant("audit", "--repo", str(repo.root), *args)
    assert result.exit_code == 0, result.output
    result.stdout_bytes.decode("utf-8")  # strict: what was written is valid UTF-8
    if "json" in args:
        json.loads(result.stdout)
