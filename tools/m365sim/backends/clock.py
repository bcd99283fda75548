"""The simulator's clock: real time plus an offset that the control API moves (``PUT /_sim/clock``), so that tests
can let tokens, refresh tokens, delta tokens, credentials and throttle windows age without waiting."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, on the simulator's clock."""


class SimClock:
    """``time.time()`` plus ``offset`` seconds."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


def iso(epoch: float) -> str:
    """``2026-11-26T17:00:00Z``: Graph's DateTimeOffset as it answers it (UTC, second precision)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp with a zone (``Z`` or an offset); None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()
