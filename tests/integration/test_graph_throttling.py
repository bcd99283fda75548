"""Warden's Graph client under Graph's throttling, against the simulated cloud.

https://learn.microsoft.com/en-us/graph/throttling : on 429, wait Retry-After (the docs' sample is fractional,
``2.128``) before retrying; kiota's own retry handler would ignore a fractional value and back off ~3.5-4.5 s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from shared.adapters.graph import GraphConnection, get_json
from shared.bootstrap import Container
from shared.config import load_settings
from tests.conftest import DemoStack
from tools import demo

Spend = Callable[[int], Awaitable[tuple[Any, GraphConnection]]]


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


def org(client: Any) -> Any:
    """GET /organization?$select=id: 1 resource unit (GET 1, $select -1, never below 1)."""
    return get_json(client, "/organization", {"$select": "id"})


@pytest.fixture
async def throttled(
    stack: DemoStack,
) -> AsyncIterator[Callable[[int], Awaitable[tuple[Any, GraphConnection]]]]:
    """Spends a budget of ``units`` RU per 10 s with as many calls, then moves the simulator's clock 9.2 s
    on: the spent units free up ~0.8 s from now (less the time the calls took), so Graph's next answer is 429
    with a fractional Retry-After, as the throttling page's sample. Yields the demo directory's client."""
    c = Container(load_settings(stack.settings))

    async def spend(units: int) -> tuple[Any, GraphConnection]:
        directory = c.settings.demo_directory
        assert directory is not None
        client = await c.graph_for_demo(directory)
        stack.set_faults(resourceUnitsPer10s=units)
        stack.sim.control("DELETE", "/_sim/requests")
        for _ in range(units):
            await org(client)
        advance_clock(stack, 9.2)
        return client, c.tenant_graph.connections[(directory.tenant_id, directory.client_id)]

    yield spend
    await c.aclose()


async def test_fractional_retry_after_is_waited_then_the_call_succeeds(
    stack: DemoStack, throttled: Spend
) -> None:
    client, connection = await throttled(3)
    started = time.monotonic()
    body = await org(client)
    elapsed = time.monotonic() - started
    assert body["value"][0]["id"] == demo.DEMO_TENANT_ID
    assert [r["status"] for r in graph_calls(stack)] == [200, 200, 200, 429, 200]
    # It waited for the fractional Retry-After, not kiota's multi-second fallback backoff.
    assert 0.3 <= elapsed < 2.5, elapsed
    assert connection.gate.pauses == 1


async def test_concurrent_calls_of_a_throttled_directory_wait_for_the_gate(
    stack: DemoStack, throttled: Spend
) -> None:
    """Graph's budget is per app per tenant: once told to wait, the directory's other calls wait too,
    instead of going out and being refused during the pause."""
    client, connection = await throttled(2)
    first = asyncio.create_task(org(client))
    for _ in range(200):  # bounded: until Graph has told the first call to wait (at most 10 s)
        if connection.gate.pauses:
            break
        await asyncio.sleep(0.05)
    assert connection.gate.pauses == 1
    second = await org(client)
    assert (await first)["value"] and second["value"]
    calls = graph_calls(stack)
    throttled_call = next(r for r in calls if r["status"] == 429)
    after = [r for r in calls if r["seq"] > throttled_call["seq"]]
    # Without the gate the second call would have reached Graph right after the 429, inside the pause.
    assert after and all(at(r) - at(throttled_call) >= 0.3 for r in after), (throttled_call, after)
    assert [r["status"] for r in after][-2:] == [200, 200]
