"""`audit --grant` claims only what the records back: an approval the forge lookup did not count
(the pull request was merged as another commit than the grant's: a direct push carrying a
forged "(#N)"; or the lookup failed) names no approver, whatever reviews the record lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit_runs import Step, approved_grant, create
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo
from tests.report_trail import approval, grant_approval, record, t

FILE = "grants/orders-prod/mallory.yaml"


@pytest.mark.parametrize("lookup, note, shown", [
    ("ok", "merged as another commit than the grant's (6f98b850be)", "none counted: merged as"),
    ("unavailable", "rate limited", "lookup unavailable: rate limited"),
    ("not_found", "no pull request #12", "lookup not_found: no pull request #12"),
])
def test_an_approval_that_does_not_count_names_no_approver(tmp_path: Path, lookup: str,
                                                           note: str, shown: str) -> None:
    repo = AccessRepo(tmp_path / "repo")
    g = approved_grant(FILE, "mallory", "orders-prod", "readonly", t("2026-11-16T12:00:00Z"),
                       "see #12", 12, t("2026-11-16T09:00:00Z"))
    forged = {**approval(12, "alice-gh", "dave-gh"), "lookup": lookup, "note": note}
    record(repo.root, "2026-11-16T09:05:00Z", [Step(create(g))], [g], "x1",
           lambda d: grant_approval(d, 0, forged))
    result = jitgrant("audit", "--repo", str(repo.root), "--grant", FILE, "--format", "json")
    assert result.exit_code == 0, result.output
    [request] = json.loads(result.stdout)["requests"]
    assert request["approved_by"] == [] and request["approvals_counted"] is None
    text = jitgrant("audit", "--repo", str(repo.root), "--grant", FILE).stdout
    [line] = [x for x in text.splitlines() if x.startswith("  approved by")]
    assert shown in line and "dave-gh" not in line
