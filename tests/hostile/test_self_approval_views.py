"""A pull request's author (or its grantee) approving it themselves, or an approval of an earlier
commit, never shows as "approved by" in the auditor's views: `audit` (json, csv), `audit
--grant` and the page read the reviews that counted, as `apply` judged them. Without
`repository.require_approval` such a grant is made; what the audit must not do is tell an
auditor that someone approved it who did not count.

The forge is a local stand-in (tests/forge_stub.py: an http.server on 127.0.0.1 answering
GitHub's documented pull request and reviews endpoints); git and PostgreSQL are real."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Namespace, jitgrant
from tests.cli.test_approvals import access_repo, apply, latest_record, merge_pr
from tests.forge_stub import fake_github, pull, review
from tests.helpers import AccessRepo, grant

FILE = "grants/db1/alice.yaml"


def views(repo: AccessRepo) -> tuple[list[str], list[str], str, str]:
    """approved_by as `audit --format json`, `audit --grant --format json`, the csv cell and the
    story's text line tell it."""
    root = str(repo.root)
    [period] = json.loads(jitgrant("audit", "--repo", root, "--format", "json").stdout)
    [request] = json.loads(jitgrant("audit", "--repo", root, "--grant", FILE, "--format",
                                    "json").stdout)["requests"]
    csv = jitgrant("audit", "--repo", root, "--format", "csv").stdout.splitlines()
    row = dict(zip(csv[0].split(","), csv[1].split(","), strict=True))
    text = jitgrant("audit", "--repo", root, "--grant", FILE).stdout
    [line] = [x for x in text.splitlines() if x.startswith("  approved by")]
    return period["approved_by"], request["approved_by"], row["approved_by"], line


def test_own_and_stale_approvals_are_not_shown_as_approvals(tmp_path: Path,
                                                            namespace: Namespace) -> None:
    """#12 is dave-gh's, for alice: its author and its grantee approve it, bob-gh approved a
    commit before the last push, erin-gh approved the merged head. Only erin-gh approved."""
    repo = access_repo(tmp_path / "repo", namespace)
    merge = merge_pr(repo, 13, {FILE: grant()})
    with fake_github() as forge:
        forge.pr(13, pull(13, "dave-gh", merge), [
            review("dave-gh", "APPROVED", review_id=1),  # the author
            review("ALICE-GH", "APPROVED", review_id=2),  # the grantee, in another case
            review("bob-gh", "APPROVED", commit_id="e" * 40, review_id=3),  # an older push
            review("erin-gh", "APPROVED", review_id=4)])
        result = apply(repo, namespace, forge)
    assert result.exit_code == 0, result.stdout + result.stderr
    [entry] = [g for a in latest_record(repo)["actions"] for g in a["grants"]]
    assert entry["approval"]["approvals"] == 1
    assert [(r["login"], r["counted"]) for r in entry["approval"]["reviews"]] == [
        ("dave-gh", False), ("ALICE-GH", False), ("bob-gh", False), ("erin-gh", True)]
    by_query, by_story, cell, line = views(repo)
    assert by_query == by_story == ["erin-gh"] and cell == "erin-gh"
    assert "dave-gh (not counted" in line and "erin-gh (" in line
    assert "erin-gh (not counted" not in line

    # A record written before reviews carried `counted`: the author's own is still left out.
    for path in (repo.root / "audit").rglob("*.json"):
        data = json.loads(path.read_text())
        for action in data["actions"]:
            for g in action["grants"]:
                for r in g.get("approval", {}).get("reviews", []):
                    del r["counted"]
        path.write_text(json.dumps(data))
    by_query, by_story, _, _ = views(repo)
    assert "dave-gh" not in by_query and "dave-gh" not in by_story

