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
from collections.abc import Awaitable, Callable
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

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, self._clock() + seconds)
        self.pauses += 1

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    async def wait(self) -> None:
        while (delay := self.remaining()) > 0:
            await self._sleep(delay)
