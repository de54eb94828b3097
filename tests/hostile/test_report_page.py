"""The HTML report shows what pull-request authors and database users wrote: a grant's reason
that closes the script element, an application name and a client address that are markup, a
pull request URL that is javascript:, a person name in the URL's fragment. Opened in a real
headless chromium (tests/browser.py), none of it becomes an element, an attribute or a link;
it is shown as text."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.auditlog import Query
from reconciler.htmlreport import page
from tests.browser import Dom, dump_dom
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo
from tests.report_trail import (ALICE_FILE, HOSTILE_APP, HOSTILE_CLIENT, HOSTILE_REASON,
                                write_trail)

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
MARKUP = [HOSTILE_REASON, HOSTILE_APP, HOSTILE_CLIENT,
          "<iframe srcdoc=\"<script>parent.document.title='pwned'</script>\"></iframe>",
          "<!--", "]]>", "\u2029</SCRIPT >", "\ud800 lone surrogate"]


def assert_nothing_injected(dom: Dom) -> None:
    """Only the page's own two scripts, no element from the data, the script left the title
    alone and set no attribute it was not meant to."""
    scripts = dom.by_tag("script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None]
    assert not dom.by_tag("img") and not dom.by_tag("svg") and not dom.by_tag("iframe")
    [title] = dom.by_tag("title")
    assert title.text == "jitgrant access report"
    [body] = dom.by_tag("body")
    assert "data-pwned" not in body.attrs
    assert all(not any(k.startswith("on") for k in e.attrs) for e in dom.elements)
    assert all((a.attrs.get("href") or "").startswith("https://") for a in dom.by_tag("a"))


def hostile_row(text: str, n: int) -> dict[str, Any]:
    return {"grantee": text, "target": f"t{n}{text}", "access": text, "login": text,
            "granted_at": "2026-11-19T20:05:00Z", "expires": "2026-11-19T23:00:00Z",
            "ended_at": None, "ended_cause": None, "ended_pull_request": None, "held": text,
            "approvals": [{"file": text, "pull_request": 7, "merge_commit": None,
                           "commit": None, "author": text, "reason": text, "ticket": text}],
            "approved_by": [text], "pull_request_url": f"javascript:alert(1)//{text}",
            "first_used": "2026-11-19T20:06:00Z", "last_seen": "2026-11-19T20:10:00Z",
            "sessions_seen": 1, "clients": [text], "applications": [text],
            "sessions_ended": 0, "used": True, "break_glass": False}


def test_hostile_records_through_the_command(tmp_path: Path) -> None:
    """mallory's reason, ticket and pull-request author (tests/report_trail.py), as `audit
    --format html` writes them from the records."""
    repo = AccessRepo(tmp_path / "repo")
    write_trail(repo.root)
    result = jitgrant("audit", "--repo", str(repo.root), "--format", "html")
    assert result.exit_code == 0, result.output
    html = tmp_path / "report.html"
    html.write_text(result.stdout)
    raw, dom = dump_dom(html, "#person=mallory", tmp_path / "profile")
    assert_nothing_injected(dom)
    assert len(dom.by_class("bar")) == 1
    assert HOSTILE_REASON in " ".join(e.text for e in dom.by_tag("td"))  # shown, as text


def test_hostile_values_in_every_field_of_a_row(tmp_path: Path) -> None:
    """Every field the page shows, including those other parts of the trail add (clients,
    applications, approvers, the pull request's URL), set to markup."""
    rows = [hostile_row(text, n) for n, text in enumerate(MARKUP)]
    html = tmp_path / "report.html"
    text = page(rows, Query(), "UTC", NOW)
    html.write_bytes(text.encode("utf-8", "backslashreplace"))
    _, dom = dump_dom(html, "", tmp_path / "profile")
    assert_nothing_injected(dom)
    assert len(dom.by_class("bar")) == len(MARKUP)
    cells = " ".join(e.text for e in dom.by_tag("td"))
    assert HOSTILE_APP in cells and "<iframe srcdoc=" in cells


@pytest.mark.parametrize("fragment", [
    "#person=%3Cimg%20src%3Dx%20onerror%3D%22document.title%3D'pwned'%22%3E",
    "#target=%3C%2Foption%3E%3Cimg%20src%3Dx%3E&from=%3Cb%3E&to=2026-99-99",
])
def test_hostile_fragments(tmp_path: Path, fragment: str) -> None:
    """A link someone sends with markup in its filters: an option with that text, no match."""
    html = tmp_path / "report.html"
    html.write_text(page([hostile_row("alice", 0)], Query(), "UTC", NOW))
    _, dom = dump_dom(html, fragment, tmp_path / "profile")
    assert_nothing_injected(dom)
    assert any("<img" in o.text for o in dom.by_tag("option"))


def test_impossible_times_from_a_record(tmp_path: Path) -> None:
    """The schema's pattern lets 2026-02-30T25:61:00Z through in a session's times: the story
    shows it as text, the page as no time; neither stops (exit 3) on it."""
    repo = AccessRepo(tmp_path / "repo")
    write_trail(repo.root)
    [path] = [p for p in (repo.root / "audit").rglob("*.json") if p.name.endswith("-a2.json")]
    record = json.loads(path.read_text())
    record["sessions"][0].update(started="2026-02-30T25:61:00Z",
                                 last_active="9999-99-99T99:99:99Z")
    path.write_text(json.dumps(record))
    result = jitgrant("audit", "--repo", str(repo.root), "--grant", ALICE_FILE)
    assert result.exit_code == 0, result.output
    assert "started 2026-02-30T25:61:00Z" in result.stdout
    row = {**hostile_row("alice", 0), "first_used": "2026-02-30T25:61:00Z", "last_seen": 7}
    html = tmp_path / "report.html"
    html.write_text(page([row], Query(), "UTC", NOW))
    _, dom = dump_dom(html, "", tmp_path / "profile")
    assert_nothing_injected(dom)
    assert len(dom.by_class("bar")) == 1
    assert not [e for e in dom.by_class("tick") if e.tag == "div"]
