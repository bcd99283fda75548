"""Timer-trigger schedules: NCRONTAB expressions and TimeSpan intervals.

Azure Functions' timer trigger accepts a six-field NCRONTAB expression
``{second} {minute} {hour} {day} {month} {day-of-week}`` or, on App Service plans, a TimeSpan
``hh:mm:ss`` meaning "every interval"
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions and
#timespan). The semantics below follow the NCrontab library that the timer extension uses:

* each field accepts ``*``, a value, a range ``a-b``, a list ``a,b,c`` and a step ``x/n`` where ``x`` is
  ``*``, a range, or a single value (``5/15`` means ``5-max/15``);
* months and days of the week may be given by name, matched case-insensitively as a *prefix* of the
  English name (``Jan``, ``january``, ``Mon``); day of week is 0-6 with Sunday = 0;
* day-of-month and day-of-week must *both* match (NCrontab ANDs them, unlike Vixie cron);
* the next occurrence is strictly after the given instant, at whole-second resolution.

Time zone: every computation here is UTC. ``WEBSITE_TIME_ZONE`` / ``TZ`` are not honoured by this
local host (Azure honours them on some plans only); keep schedules in UTC.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "ScheduleError",
    "next_occurrence",
    "parse_schedule",
    "resolve_setting_reference",
]

_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DOW_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# (name, min, max, names)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...] | None], ...] = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day", 1, 31, None),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 6, _DOW_NAMES),
)

# How far ahead next_occurrence looks before concluding a schedule never fires (e.g. "0 0 0 30 2 *").
_HORIZON_YEARS = 10


class ScheduleError(ValueError):
    """The schedule expression is not a valid NCRONTAB expression or TimeSpan."""


def _parse_value(text: str, name: str, lo: int, hi: int, names: tuple[str, ...] | None) -> int:
    if not text:
        raise ScheduleError(f"empty value in the {name} field")
    if text[0].isdigit():
        if not text.isdigit():
            raise ScheduleError(f"{text!r} is not a valid {name} value")
        value = int(text)
    elif names is not None:
        lowered = text.lower()
        for index, full in enumerate(names):
            if full.lower().startswith(lowered):
                value = index + lo
                break
        else:
            raise ScheduleError(f"{text!r} is not a known {name} name (use one of {', '.join(names)})")
    else:
        raise ScheduleError(f"{text!r} is not a valid {name} value: it must be a number from {lo} to {hi}")
    if not lo <= value <= hi:
        raise ScheduleError(f"{name} value {value} is out of range {lo}-{hi}")
    return value


def _parse_field(text: str, name: str, lo: int, hi: int, names: tuple[str, ...] | None) -> frozenset[int]:
    if not text:
        raise ScheduleError(f"the {name} field is empty")
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            base, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{part!r}: the step in the {name} field must be a positive integer")
            step = int(step_text)
        else:
            base = part
        if base == "*":
            start, end = lo, hi
        elif "-" in base[1:]:
            first, _, last = base.partition("-")
            start = _parse_value(first, name, lo, hi, names)
            end = _parse_value(last, name, lo, hi, names)
            if end < start:
                raise ScheduleError(f"{part!r}: range end is before its start in the {name} field")
        else:
            start = _parse_value(base, name, lo, hi, names)
            # NCrontab: a single value with a step runs to the field's maximum ("5/15" = "5-59/15").
            end = hi if "/" in part else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed six-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ScheduleError(
                f"{expression!r} has {len(parts)} fields; Azure Functions needs six: "
                "{second} {minute} {hour} {day} {month} {day-of-week}"
            )
        sets = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *sets)

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first occurrence strictly after ``after`` (aware, converted to UTC), or None."""
        t = _to_utc(after).replace(microsecond=0) + dt.timedelta(seconds=1)
        horizon = t + dt.timedelta(days=366 * _HORIZON_YEARS)
        while t < horizon:
            if t.month not in self.months:
                t = _first_of_next_month(t)
                continue
            # Python weekday(): Monday=0; NCrontab: Sunday=0.
            if t.day not in self.days or (t.weekday() + 1) % 7 not in self.days_of_week:
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t = t + dt.timedelta(seconds=1)
                continue
            return t
        return None

    def describe(self) -> str:
        return self.expression


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule (``hh:mm:ss``): fires every ``interval`` after the previous occurrence."""

    expression: str
    interval: dt.timedelta

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        return _to_utc(after) + self.interval

    def describe(self) -> str:
        return f"every {self.expression}"


Schedule = CronSchedule | IntervalSchedule

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


def parse_timespan(text: str) -> dt.timedelta:
    """Parse a .NET TimeSpan in the constant forms ``[d.]hh:mm[:ss[.fffffff]]``."""
    m = _TIMESPAN.match(text.strip())
    if not m:
        raise ScheduleError(f"{text!r} is not a TimeSpan (expected [d.]hh:mm[:ss[.fffffff]])")
    days, hours, minutes, seconds, fraction = m.groups()
    h, mi, s = int(hours), int(minutes), int(seconds or 0)
    if h > 23 or mi > 59 or s > 59:
        raise ScheduleError(f"{text!r} is not a TimeSpan: hours must be < 24, minutes and seconds < 60")
    micro = int((fraction or "0").ljust(7, "0")[:6])
    return dt.timedelta(days=int(days or 0), hours=h, minutes=mi, seconds=s, microseconds=micro)


def resolve_setting_reference(value: str, environ: dict[str, str] | None = None) -> str:
    """Resolve ``%SettingName%`` app-setting references, as binding expressions do
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-expressions-patterns#binding-expressions---app-settings).
    """
    env = os.environ if environ is None else environ

    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in env:
            raise ScheduleError(f"app setting {key!r} referenced as %{key}% is not defined")
        return env[key]

    return re.sub(r"%([^%]+)%", repl, value)


def parse_schedule(expression: str, environ: dict[str, str] | None = None) -> Schedule:
    """Parse a timer schedule: ``%Setting%`` references first, then TimeSpan if it contains ``:``
    (the timer extension's rule), otherwise NCRONTAB."""
    resolved = resolve_setting_reference(expression, environ).strip()
    if not resolved:
        raise ScheduleError("the schedule is empty")
    if ":" in resolved and " " not in resolved:
        interval = parse_timespan(resolved)
        if interval <= dt.timedelta(0):
            raise ScheduleError(f"{resolved!r}: a TimeSpan schedule must be positive")
        return IntervalSchedule(resolved, interval)
    return CronSchedule.parse(resolved)


def next_occurrence(schedule: Schedule | str, after: dt.datetime) -> dt.datetime | None:
    """The next time ``schedule`` fires strictly after ``after`` (UTC), or None if never."""
    parsed = parse_schedule(schedule) if isinstance(schedule, str) else schedule
    return parsed.next_after(after)


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _first_of_next_month(t: dt.datetime) -> dt.datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
