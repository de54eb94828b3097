"""The HTML report without a browser: a page that needs nothing but itself, a Content-Security-
Policy whose hashes are those of its own style and script, data that cannot leave its script
element, and after-hours bands that agree with `audit --after-hours`."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.auditlog import Query, after_hours
from reconciler.htmlreport import _bands, _item, page, script_json

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
ROW: dict[str, Any] = {
    "grantee": "alice", "target": "orders-prod", "access": "readonly", "login": "jit_alice",
    "granted_at": "2026-11-16T09:05:00Z", "approvals": [], "expires": "2026-11-16T12:00:00Z",
    "ended_at": "2026-11-16T12:05:00Z", "ended_cause": "expired", "ended_by": None,
    "ended_pull_request": None, "held": None, "granted_run": "a1", "ended_run": "a4"}


def sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_the_policy_allows_only_the_pages_own_style_and_script() -> None:
    html = page([ROW], Query(), "UTC", NOW)
    [policy] = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    policy = policy.replace("&#39;", "'")
    [style] = re.findall(r"<style>(.*?)</style>", html, re.S)
    [script] = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert f"script-src '{sha256(script)}';" in policy
    assert f"style-src '{sha256(style)}';" in policy
    assert policy.startswith("default-src 'none';")
    assert "unsafe" not in policy


def test_the_page_loads_nothing_from_anywhere() -> None:
    """No src, no link, no url() or @import: nothing a browser would fetch."""
    html = page([ROW], Query(), "UTC", NOW)
    assert not re.search(r"\bsrc\s*=|<link|url\(|@import|https?://", html, re.I)


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
@settings(max_examples=300, deadline=None)
def test_script_json_cannot_leave_its_element(value: Any) -> None:
    text = script_json(value)
    assert text.isascii()
    assert not set(text) & set("<>&\u2028\u2029")
    parsed = json.loads(text)
    assert json.dumps(parsed, sort_keys=True) == json.dumps(_whole_text(value), sort_keys=True)


def _whole_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_whole_text(k): _whole_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_text(v) for v in value]
    return value


def test_the_pages_data_is_the_rows() -> None:
    html = page([ROW, {**ROW, "grantee": "bob"}], Query(), "UTC", NOW)
    [data] = re.findall(r'<script type="application/json" id="audit-data">(.*?)</script>',
                        html, re.S)
    rows = json.loads(data)["rows"]
    assert [r["grantee"] for r in rows] == ["alice", "bob"]


def test_fields_of_newer_records_are_read_and_older_rows_need_none() -> None:
    """Rows from auditlog before the sessions and approvals fields: empty lists and None."""
    old = _item(ROW, timezone.utc)
    assert old["approved_by"] == [] and old["first_used"] is None and old["used"] is None
    assert old["judged_by"] == "grant"
    newer = _item({**ROW, "approved_by": ["dave-gh"], "first_used": "2026-11-16T19:00:00Z",
                   "pull_request_url": "https://github.com/acme/access/pull/12",
                   "used": True}, timezone.utc)
    assert newer["approved_by"] == ["dave-gh"] and newer["judged_by"] == "sessions"
    assert newer["after_hours"]  # first used at 19:00, though granted at 09:05
    assert newer["pull_request_url"] == "https://github.com/acme/access/pull/12"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "http://x.test/",
                                 " https://x.test/", "//x.test/", 12])
def test_a_pull_request_link_only_when_it_is_https(url: Any) -> None:
    assert _item({**ROW, "pull_request_url": url}, timezone.utc)["pull_request_url"] is None


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_the_bands_are_the_hours_audit_calls_after_hours(zone: str) -> None:
    """Every 7 minutes over five weeks around a change of summer time: inside a band exactly
    when auditlog.after_hours says so."""
    tz = timezone.utc if zone == "UTC" else ZoneInfo(zone)
    rows = [_item({**ROW, "granted_at": "2026-10-12T09:00:00Z",
                   "ended_at": "2026-11-12T09:00:00Z"}, tz)]
    bands = _bands(rows, tz, datetime(2026, 11, 13, tzinfo=timezone.utc))
    at = datetime(2026, 10, 12, 9, 0, tzinfo=timezone.utc)
    while at < datetime(2026, 11, 12, 9, 0, tzinfo=timezone.utc):
        ms = int(at.timestamp() * 1000)
        assert any(a <= ms < b for a, b in bands) == after_hours(at, tz), at
        at += timedelta(minutes=7)


def test_no_rows_no_bands() -> None:
    assert _bands([], timezone.utc, NOW) == []
