"""Timestamps and durations as grant and policy files write them."""

from __future__ import annotations

import json
import re

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.schemas import schema_dir
from reconciler.timeutil import format_duration, iso, parse_duration, parse_timestamp

UTC = timezone.utc


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-21T18:00:00Z", datetime(2026, 11, 21, 18, 0, tzinfo=UTC)),
    ("2026-11-21t18:00:00z", datetime(2026, 11, 21, 18, 0, tzinfo=UTC)),
    ("2026-11-21 18:00:00Z", datetime(2026, 11, 21, 18, 0, tzinfo=UTC)),
    ("2026-11-21T18:00:00+02:00", datetime(2026, 11, 21, 16, 0, tzinfo=UTC)),
    ("2026-11-21T18:00:00-05:30", datetime(2026, 11, 21, 23, 30, tzinfo=UTC)),
    ("2026-11-21T23:30:00-01:00", datetime(2026, 11, 22, 0, 30, tzinfo=UTC)),
    ("2026-11-21T18:00:00.5Z", datetime(2026, 11, 21, 18, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-21T18:00:00.123456Z", datetime(2026, 11, 21, 18, 0, 0, 123456, tzinfo=UTC)),
    # Nanoseconds are cut to what datetime holds, not rejected.
    ("2026-11-21T18:00:00.123456789Z", datetime(2026, 11, 21, 18, 0, 0, 123456, tzinfo=UTC)),
    ("2028-02-29T00:00:00Z", datetime(2028, 2, 29, tzinfo=UTC)),
])
def test_parse_timestamp_accepts_rfc3339_and_returns_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2026-11-21T18:00:00", "2026-11-21T18:00:00.250"])
def test_parse_timestamp_without_zone_asks_for_one(text: str) -> None:
    with pytest.raises(ValueError, match="^must include a time zone"):
        parse_timestamp(text)


@pytest.mark.parametrize("text", [
    "2026-11-21", "garbage", "", "18:00:00Z", "2026-11-21T18:00Z", "2026-11-21T18:00:00+0200",
    "2026-11-21T18:00:00 Z", "2026-11-21T18:00:00.Z", "tomorrow", "1763748000",
])
def test_parse_timestamp_rejects_what_is_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match="must be an RFC 3339 date and time"):
        parse_timestamp(text)


@pytest.mark.parametrize("text", [
    "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-21T24:00:00Z",
    "2026-11-21T18:00:60Z", "2026-11-31T00:00:00Z",
])
def test_parse_timestamp_rejects_impossible_dates(text: str) -> None:
    with pytest.raises(ValueError, match="is not a valid date and time"):
        parse_timestamp(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_timestamp_out_of_range_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)),
    ("8h", timedelta(hours=8)),
    ("2d", timedelta(days=2)),
    ("1w", timedelta(weeks=1)),
    ("45s", timedelta(seconds=45)),
    (" 8h ", timedelta(hours=8)),
    ("PT8H", timedelta(hours=8)),
    ("pt8h", timedelta(hours=8)),
    ("P1DT2H", timedelta(days=1, hours=2)),
    ("PT1H30M", timedelta(hours=1, minutes=30)),
    ("PT90M", timedelta(minutes=90)),
    ("P1W", timedelta(weeks=1)),
    ("P1D", timedelta(days=1)),
    ("PT30S", timedelta(seconds=30)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("2h45m30s", timedelta(hours=2, minutes=45, seconds=30)),
    ("90m", timedelta(minutes=90)),
    ("2H", timedelta(hours=2)),
    ("1D12H", timedelta(days=1, hours=12)),
    ("1w2d", timedelta(weeks=1, days=2)),
])
def test_parse_duration_accepts_short_and_iso_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0m", "0s", "PT0S", "P0D", "PT0H0M"])
def test_parse_duration_rejects_zero(text: str) -> None:
    with pytest.raises(ValueError, match="must be longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize("text", [
    "-1h", "-PT1H", "garbage", "", "8", "h", "8x", "1.5h", "8 h", "8hours", "P", "PT", "P1DT",
    "PT1H1", "P1M", "P1Y", "T8H", "1234567h", "30m1h", "1h1h", "1h 30m", "1h30", "h30m",
])
def test_parse_duration_rejects_negative_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="must be a duration like 30m, 8h, 1h30m, 2d or PT8H"):
        parse_duration(text)


@pytest.mark.parametrize(("value", "expected"), [
    (timedelta(hours=8), "8h"),
    (timedelta(minutes=45), "45m"),
    (timedelta(days=2, hours=3), "2d3h"),
    (timedelta(days=1, hours=2, minutes=5), "1d2h5m"),
    (timedelta(weeks=1), "7d"),
    (timedelta(seconds=30), "30s"),
    (timedelta(0), "0s"),
    (timedelta(hours=-2), "-2h"),
    (timedelta(days=-1, minutes=-30), "-1d30m"),
])
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


@pytest.mark.parametrize("text", ["30m", "8h", "2d", "P1DT2H", "PT90M", "P2DT3H5M"])
def test_format_duration_round_trips_through_parse(text: str) -> None:
    value = parse_duration(text)
    assert parse_duration(_as_iso(format_duration(value))) == value


def _as_iso(short: str) -> str:
    """2d3h5m -> P2DT3H5M, so that multi-unit output can be parsed back."""
    days, _, rest = short.rpartition("d")
    return f"P{days or 0}DT{rest.upper()}" if rest else f"P{days}D"


def test_iso_prints_utc_with_z() -> None:
    value = datetime(2026, 11, 21, 19, 0, 30, 999, tzinfo=timezone(timedelta(hours=1)))
    assert iso(value) == "2026-11-21T18:00:30Z"
    assert iso(None) is None


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31),
                    timezones=st.just(UTC)),
       st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
def test_any_formatted_timestamp_parses_back(value: datetime, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    text = value.astimezone(zone).isoformat()
    assert parse_timestamp(text) == value


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=999_999), st.sampled_from("smhdw"))
def test_any_short_duration_parses(number: int, unit: str) -> None:
    names = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    assert parse_duration(f"{number}{unit}") == timedelta(**{names[unit]: number})


def test_schema_and_parser_agree_on_durations() -> None:
    """The policy schema's duration pattern accepts exactly what parse_duration reads."""
    schema = json.loads((schema_dir() / "policy.schema.json").read_text())
    pattern = schema["$defs"]["duration"]["pattern"]
    for text in ("1h30m", "2h45m30s", "90m", "2H", "1w2d", "8h", "PT8H", "pt8h"):
        assert re.search(pattern, text), text
        parse_duration(text)
    for text in ("30m1h", "1h1h", "h30m", "1h30", "8 h", "1.5h", ""):
        assert not re.search(pattern, text), text
