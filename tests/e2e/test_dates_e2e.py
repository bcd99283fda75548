"""Lifecycle dates (rule 21) through the local host: Warden's clock is moved (a host started with
WARDEN_CLOCK_OFFSET_SECONDS), never slept on. A termination dated in Europe/Berlin blocks at local midnight there,
not a minute before; a start date activates a staged user; a date missed while Warden was down still applies."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.domain.dates import instant
from tests.e2e import sync_support as ss
from tests.e2e.conftest import QUIET_TIMERS, WardenHost, new_user, triggers_off
from tools import procs

DATES = "lifecycle_dates"


@contextmanager
def host_at(warden: WardenHost, moment: dt.datetime, tmp: Path) -> Iterator[WardenHost]:
    """A second host on the same storage and cloud, whose clock reads ``moment`` now. Its queue and timer
    triggers are disabled: it runs only the timer a test starts through its admin API, and every queue message
    (the syncs the timer asks for) is left to the session's host, on the real clock."""
    offset = (moment - dt.datetime.now(dt.UTC)).total_seconds()
    off = triggers_off(warden)
    env = {
        **os.environ,
        **warden.stack.settings,
        **QUIET_TIMERS,
        **off,
        "WARDEN_CLOCK_OFFSET_SECONDS": f"{offset:.3f}",
    }
    port = procs.free_port()
    log = tmp / f"host-{port}.log"
    child = procs.start_funchost(port, env=env, log=log)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        yield WardenHost(f"http://127.0.0.1:{port}", warden.stack, http, log)
    finally:
        http.close()
        child.stop()
    text = log.read_text(errors="replace")
    for setting in off:
        name = setting.split(".")[1]
        assert f"Function '{name}' is disabled" in text, f"the helper host listened for {name}"
    assert "New queue message detected" not in text, "the helper host took a queue message"


def state(warden: WardenHost, user_id: str) -> str:
    return str(warden.ok("GET", f"/users/{user_id}")["state"])


def test_a_future_termination_in_berlin_blocks_at_local_midnight_there(
    warden: WardenHost, demo_directory: dict[str, Any], tmp_path: Path
) -> None:
    user = new_user(warden)
    warden.ok("PUT", f"/users/{user['id']}/directories/{demo_directory['id']}", 201)
    link = ss.wait_link(warden, user["id"], demo_directory["id"], "synced")
    graph = ss.demo_graph(warden)
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    warden.ok("PATCH", f"/users/{user['id']}", json={"endAt": day, "timeZone": "Europe/Berlin"})
    due = instant(day, "Europe/Berlin")
    assert due.hour in (22, 23), "local midnight in Berlin is the evening before in UTC"
    with host_at(warden, due - dt.timedelta(minutes=1), tmp_path) as early:
        early.run_timer(DATES)
    assert state(warden, user["id"]) == "active", "a minute before, nothing happens"
    assert graph.get_user(link["m365UserId"])["accountEnabled"] is True
    with host_at(warden, due + dt.timedelta(minutes=1), tmp_path) as late:
        late.run_timer(DATES)
    assert state(warden, user["id"]) == "suspended"
    ss.wait_link(warden, user["id"], demo_directory["id"], "blocked")
    assert graph.get_user(link["m365UserId"])["accountEnabled"] is False
    (entry,) = [
        e
        for e in ss.audit(warden, user["id"])
        if e["action"] == "user.update" and e["actor"] == "timer:dates"
    ]
    assert entry["after"] == {"state": "suspended"}


def test_a_start_date_missed_while_down_activates_the_staged_user_on_the_next_run(
    warden: WardenHost, demo_directory: dict[str, Any], tmp_path: Path
) -> None:
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date().isoformat()
    user = new_user(warden, state="staged", startAt=start, timeZone="America/New_York")
    due = instant(start, "America/New_York")
    with host_at(warden, due + dt.timedelta(days=2), tmp_path) as later:  # two days late: the timer was down
        later.run_timer(DATES)
    assert state(warden, user["id"]) == "active"
    with host_at(warden, due + dt.timedelta(days=3), tmp_path) as again:
        again.run_timer(DATES)
    updates = [e for e in ss.audit(warden, user["id"]) if e["actor"] == "timer:dates"]
    assert len(updates) == 1, "applied once"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland"])
def test_the_instant_follows_the_zone_and_its_dst(zone: str) -> None:
    winter, summer = instant("2027-01-15", zone), instant("2027-07-15", zone)
    offsets = {"Europe/Berlin": (1, 2), "Asia/Kolkata": (5.5, 5.5), "Pacific/Auckland": (13, 12)}[zone]
    for moment, local_date, hours in (
        (winter, dt.date(2027, 1, 15), offsets[0]),
        (summer, dt.date(2027, 7, 15), offsets[1]),
    ):
        midnight = dt.datetime.combine(local_date, dt.time(), dt.UTC)
        assert midnight - moment == dt.timedelta(hours=hours)
