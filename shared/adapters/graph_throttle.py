"""Client-side respect for Graph's throttling, per directory.

- ``parse_retry_after``: Graph's ``Retry-After`` may be fractional (the throttling page's own sample is
  ``2.128``); kiota's RetryHandler parses it with ``int()`` and, failing, falls back to ~3.5 to 4.5 s of backoff.
- ``ThrottleGate``: once Graph says "retry after t" for a directory, no request of that directory's client
  goes out before t — not just the request that was told, but every concurrent one (Graph's budget is per app
  per tenant, so they would all be refused and each extend the penalty).

https://learn.microsoft.com/en-us/graph/throttling and .../throttling-limits
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

THROTTLED = (429, 503)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds, possibly fractional, or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        current = now or dt.datetime.now(dt.UTC)
        seconds = (when - current).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)


class ThrottleGate:
    """Holds every request of one directory until the latest Retry-After it was given has passed."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0
        self.pauses = 0
        self.usage = Usage()

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, self._clock() + seconds)
        self.pauses += 1

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    async def wait(self) -> None:
        while (delay := self.remaining()) > 0:
            await self._sleep(delay)


class SlidingBudget:
    """At most ``limit`` units in any ``window`` seconds, as Graph counts its resource-unit and write limits
    (sliding windows: a burst is allowed, then each unit waits for an old one to leave the window). ``take``
    waits until the units fit, so Warden stays under the limit instead of collecting 429s."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._events: deque[tuple[float, int]] = deque()
        self._used = 0
        self.waited = 0.0

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            self._used -= self._events.popleft()[1]

    async def take(self, units: int) -> None:
        if units <= 0:
            return
        while True:
            now = self._clock()
            self._expire(now)
            if self._used == 0 or self._used + units <= self.limit:
                self._events.append((now, units))
                self._used += units
                return
            excess, wait = self._used + units - self.limit, self.window
            for at, n in self._events:
                excess -= n
                if excess <= 0:
                    wait = at + self.window - now
                    break
            wait = max(wait, 0.001)
            self.waited += wait
            await self._sleep(wait)


def ru_limit(tenant_users: int) -> int:
    """The resource units per 10 s an app gets in a tenant of this size (throttling-limits: S < 50 users 3,500,
    M 50-500 5,000, L > 500 8,000)."""
    return 3_500 if tenant_users < 50 else (5_000 if tenant_users <= 500 else 8_000)


WRITE_LIMIT, WRITE_WINDOW = 3_000, 150.0
RU_WINDOW = 10.0


@dataclass
class Usage:
    """What one directory's Graph client spent and waited, and the budgets that pace it."""

    requests: int = 0
    resource_units: int = 0
    writes: int = 0
    throttled: int = 0
    ru: SlidingBudget = field(default_factory=lambda: SlidingBudget(ru_limit(0), RU_WINDOW))
    write: SlidingBudget = field(default_factory=lambda: SlidingBudget(WRITE_LIMIT, WRITE_WINDOW))

    def snapshot(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "resourceUnits": self.resource_units,
            "writes": self.writes,
            "throttled": self.throttled,
            "waitedSeconds": round(self.ru.waited + self.write.waited, 3),
        }
