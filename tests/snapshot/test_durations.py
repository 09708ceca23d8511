from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from snapshot.durations import DurationError, format_duration, parse_duration, parse_time_bound

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(days=14)),
        ("1m", timedelta(days=30)),  # m is a month, as in restic
        ("1y", timedelta(days=365)),
        ("1y2m", timedelta(days=365 + 60)),
        ("1d12h", timedelta(hours=36)),
        ("6y5m234d37h", timedelta(days=6 * 365 + 150 + 234, hours=37)),
        ("0d", timedelta(0)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("30", "number without a unit"),
        ("30x", "unknown unit 'x'"),
        ("30 d", "unexpected ' ' after 30"),
        ("d30", "expected a number"),
        ("-3d", "expected a number"),
        ("1.5d", "unexpected '.' after 1"),
        ("3days", "unknown unit 'days'"),
        ("90min", "unknown unit 'min'"),
        ("1d2d", "unit 'd' given twice"),
    ],
)
def test_parse_duration_errors_name_the_text(text: str, problem: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError
    assert info.value.text == text
    assert problem in str(info.value)
    assert str(info.value).startswith(f"invalid duration {text!r}: ")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=30), "30d"),
        (timedelta(hours=12), "12h"),
        (timedelta(days=60), "60d"),
        (timedelta(days=365), "1y"),
        (timedelta(days=395, hours=2), "1y30d2h"),
        (timedelta(0), "0h"),
    ],
)
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01", datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-06-01T03:00:00Z", datetime(2026, 6, 1, 3, tzinfo=UTC)),
        ("2026-06-01T03:00:00z", datetime(2026, 6, 1, 3, tzinfo=UTC)),
        ("2026-06-01T05:00:00+02:00", datetime(2026, 6, 1, 3, tzinfo=UTC)),
        ("2026-06-01T03:00:00", datetime(2026, 6, 1, 3, tzinfo=UTC)),  # no offset: UTC
        ("2026-06-01T03:00:00.123456+00:00", datetime(2026, 6, 1, 3, 0, 0, 123456, tzinfo=UTC)),
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
    ],
)
def test_parse_time_bound(text: str, expected: datetime) -> None:
    got = parse_time_bound(text, NOW)
    assert got == expected
    assert got.tzinfo is UTC


def test_time_bound_from_a_non_utc_now_is_utc() -> None:
    now = datetime(2026, 6, 15, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    assert parse_time_bound("1d", now) == datetime(2026, 6, 14, 12, 30, tzinfo=UTC)
    assert parse_time_bound("1d", now).tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-06-01T25:00", "7x"])
def test_bad_time_bounds(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_time_bound(text, NOW)
    assert str(info.value).startswith(f"invalid time {text!r}: ")


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_time_bound("7d", datetime(2026, 6, 15))


@pytest.mark.parametrize("text", ["9" * 4_301 + "d", "1" * 13 + "h", "1d" + "9" * 10_000 + "h"])
def test_a_number_of_thousands_of_digits_is_too_large_not_a_crash(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert "too large" in str(info.value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "text", ["2027y", "9999y", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_a_time_bound_out_of_range_is_a_duration_error(text: str) -> None:
    with pytest.raises(DurationError):
        parse_time_bound(text, datetime(2026, 6, 1, tzinfo=UTC))
