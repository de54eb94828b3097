"""`jitgrant audit --format html`: the access periods of a query as one self-contained page, a
timeline per target above the table of the same rows, for an auditor's browser.

The page needs nothing but itself: no network (its Content-Security-Policy forbids every fetch),
its style and script inline and allowed by their SHA-256 hashes only, so it works from file://,
as a CI artifact or on a static site. Filters (person, target, period) are read from and written
to the URL's fragment (report.html#person=alice&target=orders-prod&from=2026-11-01), so a
filtered view can be shared as a link.

Every value in the rows comes from files that anyone who can open a pull request shapes (a
grant's reason) or from a database user (an application name): the template escapes everything
it prints, the rows travel as JSON in a <script type="application/json"> element with every
`<`, `>`, `&` and non-ASCII character escaped (so nothing can close the element, and U+2028/9
cannot end a line), and the script puts them into the page with textContent only. A pull
request's link is a link only when it is an https:// URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date, datetime, timedelta, timezone, tzinfo
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from . import __version__
from .auditlog import WORK_END, WORK_START, Query, after_hours
from .timeutil import iso, record_time_or_none

Row = dict[str, Any]
MAX_SHADED_DAYS = 3 * 366  # after-hours bands beyond this span are not drawn (too thin to see)

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("reconciler", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def page(rows: list[Row], query: Query, zone_name: str, now: datetime,
         unused: bool = False) -> str:
    """The page for the access rows of `query` (auditlog.period_row, with whatever fields the
    other parts of the trail add: approved_by, first_used, ...); `unused`: the rows are those
    of `audit --unused`, and the page says so."""
    css, js = _asset("report.css"), _asset("report.js")
    items = [_item(r, query.zone) for r in rows]
    data = {"zone": zone_name, "generated": iso(now), "rows": items,
            "after_hours": _bands(items, query.zone, now)}
    return _ENV.get_template("report.html.j2").render(
        css=Markup(css), js=Markup(js), data=Markup(script_json(data)),
        csp=csp(css, js), zone=zone_name, generated=_show(now, query.zone),
        query=describe(query, unused), count=len(items), version=__version__,
        work=f"{WORK_START:%H:%M}\u2013{WORK_END:%H:%M}")


def _asset(name: str) -> str:
    return resources.files("reconciler").joinpath("templates", name).read_text("utf-8")


def csp(css: str, js: str) -> str:
    """Nothing from anywhere; only this page's own style and script, by their hashes."""
    return (f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
            "img-src 'none'; base-uri 'none'; form-action 'none'")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: nothing in it can close the element or
    open a comment (`<`, `>`, `&` escaped), every non-ASCII character is \\u-escaped (U+2028
    and U+2029 included), and no string holds a lone surrogate (a record's JSON can carry one:
    Chromium 156 crashes on the page that shows it)."""
    text = json.dumps(_whole(value), ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _whole(value: Any) -> Any:
    """`value` with every lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_whole(k): _whole(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_whole(v) for v in value]
    return value


def describe(query: Query, unused: bool = False) -> str:
    parts = [f"since {iso(query.since)}" if query.since else "",
             f"until {iso(query.until)}" if query.until else "",
             f"grantee {query.grantee}" if query.grantee else "",
             f"target {', '.join(query.targets)}" if query.targets else "",
             "granted or changed after hours" if query.after_hours else "",
             "only access granted and sampled but never seen used" if unused else ""]
    return "; ".join(p for p in parts if p) or "every access period in the trail"


# -- rows --------------------------------------------------------------------------------------

TIMES = ("granted_at", "expires", "ended_at", "first_used", "last_seen")


def _item(row: Row, zone: tzinfo) -> Row:
    """What the page shows of one access period; fields another part of the trail adds are
    read with .get() (absent in older records and older jitgrant)."""
    approvals = row.get("approvals") or []
    item: Row = {k: row.get(k) for k in (
        "grantee", "target", "access", "login", "ended_cause", "ended_pull_request", "held",
        "sessions_seen", "sessions_ended", "used", "break_glass", *TIMES)}
    item.update(
        requested_by=_unique(a.get("author") for a in approvals),
        reasons=_unique(a.get("reason") for a in approvals),
        tickets=_unique(a.get("ticket") for a in approvals),
        pull_requests=_unique(a.get("pull_request") for a in approvals),
        pull_request_url=_https(row.get("pull_request_url")),
        approved_by=_unique(row.get("approved_by") or []),
        clients=_unique(row.get("clients") or []),
        applications=_unique(row.get("applications") or []),
        shown={})
    for k in TIMES:  # a time that is not one (02-30, 25:00) is shown as no time at all
        at = record_time_or_none(row.get(k))
        item[k] = iso(at)
        if at is not None:
            item["shown"][k] = _show(at, zone)
    judged = record_time_or_none(row.get("first_used")) or \
        record_time_or_none(row.get("granted_at"))
    item["after_hours"] = judged is not None and after_hours(judged, zone)
    item["judged_by"] = "sessions" if item["first_used"] else "grant"
    return item


def _unique(values: Any) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v is not None and v != ""))


def _https(url: Any) -> str | None:
    return url if isinstance(url, str) and url.startswith("https://") else None


def _show(at: datetime, zone: tzinfo) -> str:
    local = at.astimezone(zone)
    offset = "Z" if local.utcoffset() == timedelta(0) else local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M") + offset


# -- after-hours bands -------------------------------------------------------------------------


def _bands(items: list[Row], zone: tzinfo, now: datetime) -> list[list[int]]:
    """The times outside working hours (08:00-18:00, Monday to Friday, in `zone`) from the
    first to the last time of the rows, as [start, end) in milliseconds since the epoch, as
    auditlog.after_hours judges them."""
    times = [at for i in items for k in TIMES if (at := record_time_or_none(i.get(k))) is not None]
    if not times:
        return []
    first, last = min(times), max(max(times), now)
    day = first.astimezone(zone).date() - timedelta(days=1)
    end = min(last.astimezone(zone).date() + timedelta(days=1),
              day + timedelta(days=MAX_SHADED_DAYS))
    work = [_work_hours(d, zone) for d in _days(day, end)]
    spans: list[list[int]] = []
    cursor = _midnight(day, zone)
    for start, stop in (w for w in work if w is not None):
        spans.append([cursor, start])
        cursor = stop
    spans.append([cursor, _midnight(end + timedelta(days=1), zone)])
    return [s for s in spans if s[0] < s[1]]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _work_hours(day: date, zone: tzinfo) -> tuple[int, int] | None:
    if day.weekday() >= 5:
        return None
    return (_ms(datetime.combine(day, WORK_START, zone)), _ms(datetime.combine(day, WORK_END,
                                                                               zone)))


def _midnight(day: date, zone: tzinfo) -> int:
    return _ms(datetime.combine(day, datetime.min.time(), zone))


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# -- the command -------------------------------------------------------------------------------


def output(rows: list[Row], query: Query, zone_name: str, unused: bool = False) -> bytes:
    """`jitgrant audit --format html`: the page of the access rows, made now."""
    text = page(rows, query, zone_name, datetime.now(timezone.utc), unused)
    return text.encode("utf-8", "backslashreplace")
