"""Retry-After parsing and the per-directory throttle gate (https://learn.microsoft.com/en-us/graph/throttling)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.adapters.graph_throttle import ThrottleGate, parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2.128", 2.128),  # the throttling page's own sample is fractional
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("-4", 0.0),
        ("Thu, 26 Nov 2026 12:00:07 GMT", 7.0),
        ("Thu, 26 Nov 2026 11:59:00 GMT", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    now = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after(value, now=now) == seconds


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


async def test_gate_holds_requests_until_the_latest_retry_after() -> None:
    t = FakeTime()
    gate = ThrottleGate(clock=t.clock, sleep=t.sleep)
    await gate.wait()
    assert t.slept == []  # never throttled: no wait
    gate.pause(2.5)
    gate.pause(1.0)  # a shorter answer never shortens the pause already in force
    assert gate.remaining() == 2.5
    t.now += 0.5
    await gate.wait()
    assert t.slept == [2.0]
    assert gate.remaining() == 0 and gate.pauses == 2


async def test_gate_extends_when_told_to_wait_longer() -> None:
    t = FakeTime()
    gate = ThrottleGate(clock=t.clock, sleep=t.sleep)
    gate.pause(1.0)
    gate.pause(4.0)
    await gate.wait()
    assert t.slept == [4.0]
