"""Warden's Graph client under Graph's throttling, against the simulated cloud.

https://learn.microsoft.com/en-us/graph/throttling : on 429, wait Retry-After (the docs' sample is fractional,
``2.128``) before retrying; kiota's own retry handler would ignore a fractional value and back off ~3.5-4.5 s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.config import load_settings
from shared.container import Container
from shared.graph import get_json
from tests.conftest import DemoStack
from tools import demo


@pytest.fixture
def stack(demo_stack: DemoStack) -> Iterator[DemoStack]:
    advance_clock(demo_stack, 10.0)  # start on an empty 10 s resource-unit window
    yield demo_stack
    demo_stack.clear_faults()


def advance_clock(stack: DemoStack, seconds: float) -> None:
    """Move the simulator's clock forward only (its throttle windows, like real time, never run backwards)."""
    offset = stack.sim.control("GET", "/_sim/clock").json()["offsetSeconds"]
    stack.sim.control("PUT", "/_sim/clock", json={"offsetSeconds": offset + seconds}).raise_for_status()


def graph_calls(stack: DemoStack) -> list[dict[str, Any]]:
    return [r for r in stack.sim.requests() if r["kind"] == "graph"]


def at(entry: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


async def test_fractional_retry_after_is_waited_then_the_call_succeeds(stack: DemoStack) -> None:
    c = Container(load_settings(stack.settings))
    try:
        directory = c.settings.demo_directory
        assert directory is not None
        client = await c.graph_for_demo(directory)
        stack.set_faults(resourceUnitsPer10s=3)
        stack.sim.control("DELETE", "/_sim/requests")
        for _ in range(3):  # GET /organization?$select=id costs 1 RU: the budget is now spent
            await get_json(client, "/organization", {"$select": "id"})
        # Move the simulator's clock 9.5 s on: the spent units free up 0.5 s from now, so Graph's 429 says
        # Retry-After: 0.5 (or a hair less) — fractional, as the throttling page's sample.
        advance_clock(stack, 9.5)
        started = time.monotonic()
        body = await get_json(client, "/organization", {"$select": "id"})
        elapsed = time.monotonic() - started
        pauses = c._graph[(directory.tenant_id, directory.client_id)].gate.pauses
    finally:
        await c.aclose()
    assert body["value"][0]["id"] == demo.DEMO_TENANT_ID
    assert [r["status"] for r in graph_calls(stack)] == [200, 200, 200, 429, 200]
    # It waited for the fractional Retry-After, not kiota's multi-second fallback backoff.
    assert 0.3 <= elapsed < 2.5, elapsed
    assert pauses == 1


async def test_concurrent_calls_of_a_throttled_directory_wait_for_the_gate(stack: DemoStack) -> None:
    """Graph's budget is per app per tenant: once told to wait, the directory's other calls wait too,
    instead of going out and being refused during the pause."""
    c = Container(load_settings(stack.settings))
    try:
        directory = c.settings.demo_directory
        assert directory is not None
        client = await c.graph_for_demo(directory)
        stack.set_faults(resourceUnitsPer10s=2)
        stack.sim.control("DELETE", "/_sim/requests")
        for _ in range(2):
            await get_json(client, "/organization", {"$select": "id"})
        advance_clock(stack, 9.5)  # the window frees up ~0.5 s from now: Retry-After ~0.5
        first = asyncio.create_task(get_json(client, "/organization", {"$select": "id"}))
        await asyncio.sleep(0.1)  # the first call has been told to wait by now
        second = await get_json(client, "/organization", {"$select": "id"})
        assert (await first)["value"] and second["value"]
    finally:
        await c.aclose()
    calls = graph_calls(stack)
    throttled = next(r for r in calls if r["status"] == 429)
    after = [r for r in calls if r["seq"] > throttled["seq"]]
    # Without the gate the second call would have reached Graph 0.1 s after the 429, inside the pause.
    assert after and all(at(r) - at(throttled) >= 0.3 for r in after), (throttled, after)
    assert [r["status"] for r in after][-2:] == [200, 200]
