"""Timestamps and durations as the grant files write them, parsed by hand for precise errors."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$")
# How jitgrant writes a timestamp: UTC, to the second (YAML resolves it to a timestamp too).
UTC_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
# Go, Vault and Teleport style: one or more number-unit pairs, largest unit first (1h30m).
_SHORT = re.compile(
    r"^(?=\d)(?:(\d{1,6})w)?(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$")
_ISO = re.compile(
    r"^P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?$")
# PostgreSQL's 'infinity' and '-infinity' timestamps, as read from the catalog.
INFINITY = datetime.max.replace(tzinfo=timezone.utc)
NEG_INFINITY = datetime.min.replace(tzinfo=timezone.utc)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that must carry a zone; return it in UTC."""
    if UTC_SECONDS.fullmatch(text):  # no zone to convert
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # February 30th: the full path below says so in its words
    m = _RFC3339.match(text)
    if not m:
        raise ValueError("must be an RFC 3339 date and time, like 2026-11-21T18:00:00Z")
    if not m.group(2):
        raise ValueError("must include a time zone (Z or +HH:MM)")
    frac = m.group(1) or ""
    # fromisoformat takes at most 6 fractional digits.
    cleaned = text.replace(frac, frac[:7]) if len(frac) > 7 else text
    cleaned = cleaned.replace("z", "Z").replace("t", "T")
    try:
        return datetime.fromisoformat(cleaned.replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:  # also 0001-01-01T00:00:00+01:00 in UTC
        raise ValueError(f"is not a valid date and time ({exc})") from None


def parse_duration(text: str) -> timedelta:
    """Parse 30m, 8h, 1h30m, 2d, 1w or ISO-8601 (PT8H, P1DT2H), any case; must be positive."""
    text = text.strip()
    m = _SHORT.match(text.lower())
    if m:
        w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        value = timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    else:
        iso = _ISO.match(text.upper())
        if not iso or text.upper() in ("P", "PT") or text.upper().endswith("T"):
            raise ValueError("must be a duration like 30m, 8h, 1h30m, 2d or PT8H")
        w, d, h, mi, s = (int(g) if g else 0 for g in iso.groups())
        value = timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def format_duration(value: timedelta) -> str:
    """A short human form: 2d3h, 8h, 45m."""
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
             if n]
    return sign + ("".join(parts) or "0s")


def record_time(text: str) -> datetime:
    """An audit record's time, as `iso` writes it (2026-11-21T18:00:00Z), in UTC."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def record_time_or_none(text: object) -> datetime | None:
    """`record_time`, or None when absent, not text, or impossible (the audit schema's pattern
    lets 2026-02-30T25:61:00Z through): not known, never a reason to stop reading a trail."""
    if not isinstance(text, str):
        return None
    try:
        return record_time(text)
    except ValueError:
        return None


def iso(value: datetime | None) -> str | None:
    """UTC timestamp as 2026-11-21T18:00:00Z, the form used in output and audit."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
