"""Durations and time bounds, shared by the config file, prune and the list filters.

Grammar (restic's ``--keep-within`` plus weeks), case-sensitive, no spaces inside::

    duration := term { term }
    term     := digits unit
    unit     := "y" (365 days) | "m" (30 days, a MONTH, not a minute) | "w" (7 days)
              | "d" (1 day)    | "h" (1 hour)           | "s" (1 second)

Examples: ``30d``, ``12h``, ``2w``, ``1y6m``, ``1d12h``. Each unit may appear once. Units are
fixed lengths rather than calendar steps because a policy is a ``timedelta``: ``1m`` is always
30 days, ``1y`` always 365 days. ``0d`` is a valid, zero duration.

Errors are :class:`DurationError`, a ``ValueError`` that knows only the offending text: the
caller knows where it came from and adds that (``<file>: key 'tiers.local.keep_within': ...``
in the config loader, ``--keep-within: ...`` on the command line).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from snapshot.errors import shown

UNIT_DAYS: dict[str, int] = {"y": 365, "m": 30, "w": 7, "d": 1}
_TERM = re.compile(r"(\d+)([a-zA-Z]*)")
# No duration fits a timedelta (999,999,999 days) with more digits than this; checked before
# int() runs, which refuses 4,300 digits with an error of its own.
_MAX_DIGITS = 12
_UNIT_HELP = "y (365 days), m (30 days), w, d, h or s"


class DurationError(ValueError):
    """``text`` is not a duration (or, for :func:`parse_time_bound`, not a time either)."""

    def __init__(self, text: str, problem: str, what: str = "duration") -> None:
        super().__init__(f"invalid {what} {shown(text, 60)}: {problem}")
        self.text = text
        self.problem = problem


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``12h``, ``1y2m`` ... (see the module grammar) into a ``timedelta``."""
    if not isinstance(text, str):
        raise DurationError(repr(text), "expected a string such as '30d' or '12h'")
    stripped = text.strip()
    if not stripped:
        raise DurationError(text, "empty (expected e.g. '30d' or '12h')")
    total = timedelta()
    seen: set[str] = set()
    pos = 0
    while pos < len(stripped):
        match = _TERM.match(stripped, pos)
        if match is None:
            raise DurationError(text, f"expected a number at {stripped[pos:]!r}")
        if len(match.group(1)) > _MAX_DIGITS:
            raise DurationError(text, "too large")
        number, unit = int(match.group(1)), match.group(2)
        if not unit:
            after = stripped[match.end() :]
            if not after:
                raise DurationError(text, f"number without a unit (units: {_UNIT_HELP})")
            raise DurationError(text, f"unexpected {after[0]!r} after {match.group(1)}")
        if unit not in UNIT_DAYS and unit not in ("h", "s"):
            raise DurationError(text, f"unknown unit {unit!r} (units: {_UNIT_HELP})")
        if unit in seen:
            raise DurationError(text, f"unit {unit!r} given twice")
        seen.add(unit)
        try:
            if unit == "h":
                total += timedelta(hours=number)
            elif unit == "s":
                total += timedelta(seconds=number)
            else:
                total += timedelta(days=number * UNIT_DAYS[unit])
        except OverflowError:
            raise DurationError(text, "too large") from None
        pos = match.end()
    return total


def format_duration(value: timedelta) -> str:
    """The canonical text of a duration: years, days and hours (``30d``, ``1y30d``, ``12h``).

    Months and weeks are not used on output because 60 days reads better as ``60d`` than as
    ``2m`` (which operators misread as minutes). ``format_duration(parse_duration(t))`` parses
    back to the same ``timedelta``. Sub-hour remainders (never produced by the parser) are
    written as ``Ns`` so nothing is silently dropped.
    """
    if value < timedelta(0):
        raise ValueError(f"negative duration: {value}")
    seconds = int(value.total_seconds())
    days, rem = divmod(seconds, 86400)
    hours, secs = divmod(rem, 3600)
    years, days = divmod(days, 365)
    parts = [f"{n}{u}" for n, u in ((years, "y"), (days, "d"), (hours, "h"), (secs, "s")) if n]
    return "".join(parts) or "0h"


def parse_time_bound(text: str, now: datetime) -> datetime:
    """A point in time for ``--since`` / ``--until``: an ISO 8601 date or date-time, or a
    duration meaning that long before ``now``. Returns an aware UTC datetime.

    - ``2026-06-01``: midnight UTC starting that day;
    - ``2026-06-01T03:00:00Z`` / ``...+02:00``: that instant, converted to UTC;
    - ``2026-06-01T03:00:00`` (no offset): read as UTC, since every time the tool shows is UTC;
    - ``7d``: ``now - 7 days``.

    Raises :class:`DurationError` naming the text when it is neither.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    stripped = text.strip()
    if not stripped:
        raise DurationError(text, "empty (expected e.g. 2026-06-01 or 7d)", "time")
    if stripped[0].isdigit() and ("-" in stripped or ":" in stripped):
        return _parse_iso(text, stripped)
    try:
        return (now - parse_duration(stripped)).astimezone(UTC)
    except OverflowError:
        raise DurationError(text, "reaches before year 1", "time") from None
    except DurationError as exc:
        raise DurationError(
            text,
            f"{exc.problem}; expected a date (2026-06-01), a time (2026-06-01T03:00:00Z) "
            "or a duration (7d)",
            "time",
        ) from None


def _parse_iso(text: str, stripped: str) -> datetime:
    candidate = stripped
    # Python 3.11 accepts "Z", but a lowercase "z" is common in hand-typed input.
    if candidate.endswith("z"):
        candidate = candidate[:-1] + "Z"
    try:
        if len(candidate) == 10:
            day = date.fromisoformat(candidate)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise DurationError(
            text, "not an ISO 8601 date or time (e.g. 2026-06-01T03:00:00Z)", "time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise DurationError(text, "out of range once converted to UTC", "time") from None
