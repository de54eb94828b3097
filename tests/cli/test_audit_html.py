"""`jitgrant audit --format html` in a real headless browser (Debian's chromium: tests/browser.py):
the page renders its rows once its script ran, a filter in the URL's fragment changes what is
shown, and the timeline has as many bars as `audit --format json` has periods for the same
query. The records: tests/report_trail.py, and one period placed across a day's edge in Berlin.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.auditlog import Query
from reconciler.htmlreport import page as render_page
from tests.audit_runs import Step, approved_grant, create, login_of, make_run, revoke, write_record
from tests.browser import WINDOW, Dom, dump_dom, screenshot
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo
from tests.report_trail import t, write_trail


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> AccessRepo:
    repo = AccessRepo(tmp_path_factory.mktemp("html") / "repo")
    write_trail(repo.root)
    # gina: 2026-11-15 23:10Z-23:50Z is 00:10-00:50 on the 16th in Berlin, the 15th in UTC.
    gina = approved_grant("grants/orders-prod/gina.yaml", "gina", "orders-prod", "readonly",
                          t("2026-11-15T23:45:00Z"), "night shift", 40, t("2026-11-15T23:00:00Z"))
    write_record(repo.root, make_run(t("2026-11-15T23:10:00Z"), [Step(create(gina))], [gina]))
    write_record(repo.root, make_run(t("2026-11-15T23:50:00Z"), [Step(revoke(
        "orders-prod", login_of("orders-prod", "gina", "readonly"), "expired", [gina]))],
        [gina]))
    repo.commit("audit records [skip ci]")
    return repo


def audit(repo: AccessRepo, *args: str) -> str:
    result = jitgrant("audit", "--repo", str(repo.root), *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def periods(repo: AccessRepo, *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(audit(repo, "--format", "json", *args))
    return found


def page(repo: AccessRepo, folder: Path, *args: str) -> Path:
    out = folder / "report.html"
    out.write_text(audit(repo, "--format", "html", *args), encoding="utf-8")
    return out


def shown(dom: Dom) -> tuple[int, int]:
    """Bars in the timelines, rows in the table's body."""
    body = dom.elements.index(dom.by_tag("tbody")[0])
    return len(dom.by_class("bar")), sum(1 for e in dom.elements[body:] if e.tag == "tr")


def test_the_page_shows_every_period_of_the_query(repo: AccessRepo, tmp_path: Path) -> None:
    every = periods(repo)
    html = page(repo, tmp_path)
    _, dom = dump_dom(html, "", tmp_path / "profile")
    assert shown(dom) == (len(every), len(every))
    assert dom.elements[0].tag == "html"
    assert [e.text for e in dom.by_tag("h2")] == sorted({p["target"] for p in every})
    assert dom.by_id("shown").text == f"{len(every)} of {len(every)} access period(s)"
    assert "hidden" in dom.by_id("nothing").attrs
    people = [e.text for e in dom.by_tag("option")]
    assert {"alice", "bob", "erin", "gina", "mallory"} <= set(people)


@pytest.mark.parametrize("fragment, same_query", [
    ("#person=alice", ["--grantee", "alice"]),
    ("#target=orders-prod", ["--target", "orders-prod"]),
    ("#person=alice&target=orders-prod", ["--grantee", "alice", "--target", "orders-prod"]),
    ("#from=2026-11-17&to=2026-11-17", ["--since", "2026-11-17", "--until", "2026-11-17"]),
    ("#person=nobody", ["--grantee", "nobody"]),
])
def test_a_filter_in_the_fragment_changes_what_is_shown(
        repo: AccessRepo, tmp_path: Path, fragment: str, same_query: list[str]) -> None:
    every, expected = periods(repo), periods(repo, *same_query)
    assert len(expected) < len(every)
    html = page(repo, tmp_path)
    _, dom = dump_dom(html, fragment, tmp_path / "profile")
    assert shown(dom) == (len(expected), len(expected))
    assert dom.by_id("shown").text.startswith(f"{len(expected)} of {len(every)} ")
    assert ("hidden" in dom.by_id("nothing").attrs) == bool(expected)


def test_the_period_filter_counts_days_in_the_reports_time_zone(repo: AccessRepo,
                                                                tmp_path: Path) -> None:
    """gina's night (00:10-00:50 on the 16th in Berlin) is on the 16th in the Berlin page and on
    the 15th in the UTC page, as `--since/--until` count days in --timezone."""
    for zone, gina_on_16th in (("Europe/Berlin", True), ("UTC", False)):
        expected = periods(repo, "--since", "2026-11-16", "--until", "2026-11-16",
                           "--timezone", zone)
        assert any(p["grantee"] == "gina" for p in expected) == gina_on_16th
        html = page(repo, tmp_path, "--timezone", zone)
        _, dom = dump_dom(html, "#from=2026-11-16&to=2026-11-16", tmp_path / "profile")
        assert shown(dom) == (len(expected), len(expected))
        lanes = [e.text for e in dom.by_class("who")]
        assert any(lane.startswith("gina") for lane in lanes) == gina_on_16th


def test_the_commands_own_filters_make_the_page(repo: AccessRepo, tmp_path: Path) -> None:
    expected = periods(repo, "--target", "orders-prod", "--since", "2026-11-18")
    html = page(repo, tmp_path, "--target", "orders-prod", "--since", "2026-11-18")
    _, dom = dump_dom(html, "", tmp_path / "profile")
    assert shown(dom) == (len(expected), len(expected))
    assert "target orders-prod" in html.read_text()


def test_unused_makes_a_page_of_just_the_unused_periods(repo: AccessRepo,
                                                       tmp_path: Path) -> None:
    """`--unused --format html`: the rows of `--unused --format json`, every bar hatched as
    unused, and the page says what it shows."""
    expected = periods(repo, "--unused")
    assert expected and len(expected) < len(periods(repo))
    html = page(repo, tmp_path, "--unused")
    _, dom = dump_dom(html, "", tmp_path / "profile")
    assert shown(dom) == (len(expected), len(expected))
    assert all("unused" in e.classes() for e in dom.by_class("bar"))
    assert sorted(e.attrs["title"].split(":")[0]  # type: ignore[union-attr]
                  for e in dom.by_class("bar")) == sorted(p["grantee"] for p in expected)
    assert dom.by_id("shown").text == f"{len(expected)} of {len(expected)} access period(s)"
    assert "only access granted and sampled but never seen used" in html.read_text()
    assert "only access granted and sampled" not in page(repo, tmp_path).read_text()


def test_a_screenshot_of_the_page(repo: AccessRepo, tmp_path: Path) -> None:
    html = page(repo, tmp_path, "--timezone", "Europe/Berlin")
    out = tmp_path / "report.png"
    assert screenshot(html, "#target=orders-prod&from=2026-11-16&to=2026-11-17",
                      tmp_path / "profile", out) == WINDOW
    assert out.stat().st_size > 10_000  # a page with content, not a blank one


def test_after_hours_are_shaded_in_a_short_view(repo: AccessRepo, tmp_path: Path) -> None:
    """A view of two days shows the nights and the weekend as bands; a period granted after
    hours (bob at 21:05 UTC, gina at midnight) is marked, in the timeline and the table."""
    html = page(repo, tmp_path)
    _, dom = dump_dom(html, "#from=2026-11-15&to=2026-11-16", tmp_path / "profile")
    assert dom.by_class("night")
    marked = {e.attrs["title"].split(":")[0] for e in dom.by_class("bar")  # type: ignore[union-attr]
              if "after-hours" in e.classes()}
    assert {"bob", "gina"} <= marked and "alice" not in marked


def test_output_to_a_file(repo: AccessRepo, tmp_path: Path) -> None:
    """--output, as the reconcile workflow writes the artifact; a folder that is not there is
    one line and exit 1."""
    out = tmp_path / "report.html"
    assert audit(repo, "--format", "html", "--output", str(out)) == ""
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert list(tmp_path.iterdir()) == [out]
    result = jitgrant("audit", "--repo", str(repo.root), "--format", "html", "--output",
                      str(tmp_path / "missing" / "report.html"))
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "--output" in line and "cannot be written" in line
    csv = tmp_path / "periods.csv"
    audit(repo, "--format", "csv", "--output", str(csv))
    assert csv.read_bytes().count(b"\r\n") == len(periods(repo)) + 1


def test_the_actions_view_has_no_page(repo: AccessRepo) -> None:
    result = jitgrant("audit", "--repo", str(repo.root), "--format", "html", "--view",
                      "actions")
    assert result.exit_code == 1
    assert "--format html shows access periods" in result.stderr


def test_what_the_sessions_and_approvals_fields_add(tmp_path: Path) -> None:
    """Rows as `audit` gives them once records carry approvals and sessions (fields read by
    their contract names): approvers and the pull request's link in the table, the first use
    as a tick on the bar, a period sampled but never used hatched, after-hours use marked in
    the timeline and the table alike."""
    base = {"target": "orders-prod", "access": "readonly", "login": "l", "approvals": [],
            "granted_at": "2026-11-16T09:05:00Z", "expires": "2026-11-16T12:00:00Z",
            "ended_at": "2026-11-16T12:05:00Z", "ended_cause": "expired",
            "ended_pull_request": None, "held": None}
    rows = [
        {**base, "grantee": "alice", "approved_by": ["dave-gh"], "used": True,
         "pull_request_url": "https://github.com/acme/access/pull/12", "sessions_seen": 2,
         "first_used": "2026-11-16T09:20:00Z", "last_seen": "2026-11-16T11:00:00Z",
         "clients": ["10.0.0.5"]},
        {**base, "grantee": "erin", "approved_by": ["dave-gh"], "used": False,
         "sessions_seen": 0},
        {**base, "grantee": "frank", "used": True, "granted_at": "2026-11-16T17:00:00Z",
         "ended_at": "2026-11-16T20:00:00Z", "first_used": "2026-11-16T19:30:00Z"},
        {**base, "grantee": "bob"},  # a record from before the fields
    ]
    html = tmp_path / "report.html"
    html.write_text(page_of(rows))
    _, dom = dump_dom(html, "", tmp_path / "profile")
    bars = {e.attrs["title"].split(":")[0]: e.classes()  # type: ignore[union-attr]
            for e in dom.by_class("bar")}
    assert "unused" in bars["erin"] and "unused" not in bars["alice"] | bars["bob"]
    assert {who for who, c in bars.items() if "after-hours" in c} == {"frank"}
    ticks = [e for e in dom.by_class("tick") if e.tag == "div"]
    assert sorted(e.attrs["title"] for e in ticks) == [  # type: ignore[type-var]
        "first used 2026-11-16 09:20Z", "first used 2026-11-16 19:30Z"]
    [link] = dom.by_tag("a")
    assert link.attrs["href"] == "https://github.com/acme/access/pull/12"
    shaded = [e for e in dom.by_tag("tr") if "after-hours" in e.classes()]
    assert len(shaded) == 1
    cells = [e.text for e in dom.by_tag("td")]
    assert "dave-gh" in cells and "10.0.0.5" in cells and "never" in cells


def page_of(rows: list[dict[str, Any]]) -> str:
    return render_page(rows, Query(), "UTC", datetime(2026, 11, 20, tzinfo=timezone.utc))
