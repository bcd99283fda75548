"""Lifecycle dates (rule 21): a date or local date-time in an IANA time zone, as the instant it denotes.

"2027-01-04" in Europe/Berlin is local midnight there (23:00 UTC the day before in winter); a local time
that a DST change skips is moved forward, one it repeats takes its first occurrence (``fold=0``), as
``zoneinfo`` does. A value with its own UTC offset keeps it and ignores the zone.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None) -> dt.tzinfo:
    """The IANA zone ``name`` (UTC when None); ``ValueError`` for an unknown zone."""
    if name is None:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{name}' is not an IANA time zone (e.g. 'Europe/Berlin')") from None


def parse_local(value: str) -> dt.date | dt.datetime:
    """An ISO 8601 date (``2027-01-04``) or date-time (``2027-01-04T09:00``, optionally with an offset)."""
    text = value.strip()
    try:
        if "T" in text or " " in text:
            return dt.datetime.fromisoformat(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO 8601 date or date-time") from None


def instant(value: str, time_zone: str | None) -> dt.datetime:
    """The UTC instant ``value`` denotes in ``time_zone``."""
    parsed = parse_local(value)
    if not isinstance(parsed, dt.datetime):
        parsed = dt.datetime.combine(parsed, dt.time())
    if parsed.tzinfo is None:
        tz = zone(time_zone)
        parsed = parsed.replace(tzinfo=tz)
        # A wall time skipped by a DST change does not exist: take the instant just after the gap.
        roundtrip = parsed.astimezone(dt.UTC).astimezone(tz)
        if roundtrip.replace(tzinfo=None) != parsed.replace(tzinfo=None):
            parsed = roundtrip
    return parsed.astimezone(dt.UTC)


def check_window(start_at: str | None, end_at: str | None, time_zone: str | None) -> None:
    """``ValueError`` unless both dates parse in the zone and the end comes after the start."""
    zone(time_zone)
    start = instant(start_at, time_zone) if start_at else None
    end = instant(end_at, time_zone) if end_at else None
    if start is not None and end is not None and end <= start:
        raise ValueError("endAt must come after startAt")
