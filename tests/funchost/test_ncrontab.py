"""NCRONTAB / TimeSpan schedules of the local functions host.

Semantics per https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions
and the NCrontab library the timer extension uses (names matched by prefix, day-of-month AND day-of-week,
``a/n`` = ``a-max/n``, occurrences strictly after the given instant).
"""

from __future__ import annotations

import datetime as dt

import pytest

from tools.funchost.ncrontab import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    next_occurrence,
    parse_schedule,
    parse_timespan,
    resolve_setting_reference,
)

pytestmark = pytest.mark.unit


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc,arg-type]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # Examples from the docs' NCRONTAB table.
        ("0 */5 * * * *", utc(2024, 1, 1, 0, 3, 7), utc(2024, 1, 1, 0, 5, 0)),
        ("0 0 * * * *", utc(2024, 1, 1, 10, 0, 0), utc(2024, 1, 1, 11, 0, 0)),
        ("0 0 */2 * * *", utc(2024, 1, 1, 1, 30, 0), utc(2024, 1, 1, 2, 0, 0)),
        ("0 0 9-17 * * *", utc(2024, 1, 1, 17, 0, 1), utc(2024, 1, 2, 9, 0, 0)),
        ("0 30 9 * * *", utc(2024, 1, 1, 9, 30, 0), utc(2024, 1, 2, 9, 30, 0)),
        ("0 30 9 * * 1-5", utc(2024, 1, 5, 9, 30, 0), utc(2024, 1, 8, 9, 30, 0)),  # Fri → Mon
        ("0 30 9 * Jan Mon", utc(2024, 1, 30, 0, 0, 0), utc(2025, 1, 6, 9, 30, 0)),
        ("0 0 0 * * Sun", utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 7, 0, 0, 0)),  # Sunday = 0
        ("0 0 0 * * 0", utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 7, 0, 0, 0)),
        ("*/15 * * * * *", utc(2024, 1, 1, 0, 0, 14, 999), utc(2024, 1, 1, 0, 0, 15)),
        ("5/20 * * * * *", utc(2024, 1, 1, 0, 0, 26), utc(2024, 1, 1, 0, 0, 45)),  # 5,25,45
        ("0 0 0 1,15 * *", utc(2024, 1, 2), utc(2024, 1, 15)),
        ("0 0 0 29 2 *", utc(2023, 3, 1), utc(2024, 2, 29)),  # leap day
        ("0 0 0 31 * *", utc(2024, 4, 1), utc(2024, 5, 31)),  # April has no 31st
        ("0 0 12 * december *", utc(2024, 6, 1), utc(2024, 12, 1, 12)),  # full name, any case
        ("0 0 0 13 * Fri", utc(2024, 1, 1), utc(2024, 9, 13)),  # day AND day-of-week (Friday the 13th)
        ("59 59 23 31 12 *", utc(2024, 12, 31, 23, 59, 59), utc(2025, 12, 31, 23, 59, 59)),
    ],
)
def test_next_occurrence_matches_ncrontab_semantics(
    expression: str, after: dt.datetime, expected: dt.datetime
) -> None:
    assert next_occurrence(expression, after) == expected


def test_next_occurrence_is_strictly_after_the_instant() -> None:
    schedule = CronSchedule.parse("* * * * * *")
    assert schedule.next_after(utc(2024, 1, 1, 0, 0, 0)) == utc(2024, 1, 1, 0, 0, 1)


def test_naive_datetimes_are_taken_as_utc_and_aware_ones_converted() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    assert next_occurrence("0 0 * * * *", dt.datetime(2024, 1, 1, 10, 30)) == utc(2024, 1, 1, 11)
    assert next_occurrence("0 0 * * * *", dt.datetime(2024, 1, 1, 10, 30, tzinfo=cet)) == utc(2024, 1, 1, 10)


def test_a_schedule_that_never_fires_has_no_next_occurrence() -> None:
    assert next_occurrence("0 0 0 30 2 *", utc(2024, 1, 1)) is None


def test_name_prefixes_resolve_to_the_first_matching_name() -> None:
    assert CronSchedule.parse("0 0 0 * Ju *").months == frozenset({6})  # June before July
    assert CronSchedule.parse("0 0 0 * * T").days_of_week == frozenset({2})  # Tuesday
    assert CronSchedule.parse("0 0 0 * * Mon-Fri").days_of_week == frozenset({1, 2, 3, 4, 5})


@pytest.mark.parametrize(
    "expression",
    [
        "0 */5 * * *",  # five fields: Azure Functions needs six
        "0 0 0 * * * *",  # seven
        "60 * * * * *",
        "* 60 * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * 32 * *",
        "* * * * 13 *",
        "* * * * * 7",  # NCrontab's day of week is 0-6
        "*/0 * * * * *",
        "5-1 * * * * *",
        "a * * * * *",
        "* * * * Foo *",
        "1,,2 * * * * *",
    ],
)
def test_invalid_expressions_are_rejected(expression: str) -> None:
    with pytest.raises(ScheduleError):
        CronSchedule.parse(expression)


def test_timespan_schedule_fires_every_interval() -> None:
    schedule = parse_schedule("00:00:10")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(utc(2024, 1, 1)) == utc(2024, 1, 1, 0, 0, 10)
    assert parse_schedule("1.02:00:00").next_after(utc(2024, 1, 1)) == utc(2024, 1, 2, 2)


@pytest.mark.parametrize("text", ["24:00:00", "00:60:00", "abc", "10", "00:00:00"])
def test_invalid_or_zero_timespans_are_rejected(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(text)


def test_timespan_parser_accepts_dotnet_constant_forms() -> None:
    assert parse_timespan("00:05") == dt.timedelta(minutes=5)
    assert parse_timespan("00:00:01.5") == dt.timedelta(seconds=1.5)
    assert parse_timespan("2.00:00:00") == dt.timedelta(days=2)


def test_app_setting_references_are_resolved_from_the_environment() -> None:
    """https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions
    (schedule may be an app setting "%Name%")."""
    env = {"SYNC_SCHEDULE": "0 */10 * * * *"}
    schedule = parse_schedule("%SYNC_SCHEDULE%", env)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(utc(2024, 1, 1, 0, 1)) == utc(2024, 1, 1, 0, 10)
    assert resolve_setting_reference("q-%ENV%", {"ENV": "dev"}) == "q-dev"
    with pytest.raises(ScheduleError, match="MISSING"):
        parse_schedule("%MISSING%", env)
