"""Pure rules of the domain: lifecycle dates in IANA zones, effective bindings, directory status."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.dates import check_window, instant
from shared.domain.model import (
    ON_PREMISES_SYNC_REASON,
    Link,
    directory_status,
    effective_directories,
)


def test_a_date_in_berlin_is_local_midnight_there_in_winter_and_summer() -> None:
    assert instant("2027-01-04", "Europe/Berlin") == dt.datetime(2027, 1, 3, 23, 0, tzinfo=dt.UTC)
    assert instant("2027-07-04", "Europe/Berlin") == dt.datetime(2027, 7, 3, 22, 0, tzinfo=dt.UTC)


def test_a_local_time_skipped_by_dst_moves_forward_and_a_repeated_one_takes_its_first_occurrence() -> None:
    assert instant("2027-03-28T02:30", "Europe/Berlin") == dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.UTC)
    assert instant("2027-10-31T02:30", "Europe/Berlin") == dt.datetime(2027, 10, 31, 0, 30, tzinfo=dt.UTC)


def test_an_explicit_offset_wins_over_the_zone_and_no_zone_means_utc() -> None:
    assert instant("2027-07-01T09:00+02:00", "America/New_York") == dt.datetime(
        2027, 7, 1, 7, 0, tzinfo=dt.UTC
    )
    assert instant("2027-07-01", None) == dt.datetime(2027, 7, 1, tzinfo=dt.UTC)


def test_unknown_zones_bad_dates_and_an_end_before_the_start_are_refused() -> None:
    with pytest.raises(ValueError, match="IANA"):
        instant("2027-01-04", "Mars/Olympus")
    with pytest.raises(ValueError, match="ISO 8601"):
        instant("04/01/2027", "UTC")
    with pytest.raises(ValueError, match="after startAt"):
        check_window("2027-01-04", "2027-01-04", "UTC")
    check_window("2027-01-04", "2027-01-04T00:01", "UTC")


def test_effective_bindings_show_each_way_a_user_is_bound_and_links_left_without_one() -> None:
    links = {"d3": Link("u", "d3", status="synced", m365_user_id="m1")}
    found = effective_directories(
        "u", frozenset({"d1"}), {"g2": frozenset({"d1", "d2"}), "g1": frozenset({"d2"})}, links
    )
    assert [(d.directory_id, d.via, d.link.status) for d in found] == [
        ("d1", ("direct", "group:g2"), "pending"),
        ("d2", ("group:g1", "group:g2"), "pending"),
        ("d3", (), "synced"),
    ]
    assert [d.bound for d in found] == [True, True, False]


def test_a_tenant_synced_from_on_premises_is_blocked_and_never_synced_or_no_longer_synced_is_active() -> None:
    assert directory_status(True) == ("blocked", ON_PREMISES_SYNC_REASON)
    assert directory_status(False) == ("active", None)
    assert directory_status(None) == ("active", None)
