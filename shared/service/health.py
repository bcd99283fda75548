"""Health of Warden's dependencies: each component probed concurrently, with a deadline and its latency.

A failure is described in a few safe words (a status code, an error code, "no answer within 5 s") and
never by the exception's text or stack, which can carry URLs with signatures or other secrets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["up", "down"]


@dataclass(frozen=True)
class Probe:
    name: str
    check: Callable[[], Awaitable[None]]
    labels: dict[str, str] = field(default_factory=dict)
    """Extra identifying fields shown with the result (e.g. the directory and tenant of a Graph probe)."""


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    status: Status
    latency_ms: float
    labels: dict[str, str]
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            **self.labels,
            "status": self.status,
            "latencyMs": round(self.latency_ms, 1),
        }
        if self.detail:
            body["detail"] = self.detail
        return body


@dataclass(frozen=True)
class HealthReport:
    components: list[ComponentHealth]
    checked_at: dt.datetime

    @property
    def status(self) -> Status:
        return "up" if all(c.status == "up" for c in self.components) else "down"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checkedAt": self.checked_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "components": [c.to_json() for c in self.components],
        }


class Degraded(Exception):
    """A probe's own secret-free account of what needs attention (e.g. messages in a poison queue)."""


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A short, secret-free description of why a probe failed."""
    if isinstance(exc, Degraded):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if any(c.__name__ == "ClientAuthenticationError" for c in type(exc).__mro__):
        return "authentication failed"  # the token request was refused (e.g. a wrong client secret)
    status = getattr(exc, "status_code", None) or getattr(exc, "response_status_code", None)
    if isinstance(status, int):
        code = _error_code(exc)
        return f"HTTP {status}" + (f" {code}" if code else "")
    if isinstance(exc, ConnectionError | OSError) or type(exc).__name__ in (
        "ServiceRequestError",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
    ):
        return "unreachable"
    return f"failed ({type(exc).__name__})"


def _error_code(exc: BaseException) -> str | None:
    for candidate in (getattr(exc, "error", None), getattr(exc, "error_code", None)):
        code = getattr(candidate, "code", candidate)
        if isinstance(code, str) and code.replace("_", "").replace(".", "").isalnum():
            return code
    return None


async def _run(probe: Probe, timeout: float, clock: Callable[[], float]) -> ComponentHealth:
    started = clock()
    try:
        await asyncio.wait_for(probe.check(), timeout)
    except Exception as exc:  # a probe's failure is its component's status, never the health check's
        return ComponentHealth(
            probe.name, "down", (clock() - started) * 1000, probe.labels, describe_failure(exc, timeout)
        )
    return ComponentHealth(probe.name, "up", (clock() - started) * 1000, probe.labels)


async def check_health(
    probes: Sequence[Probe],
    *,
    timeout: float,
    clock: Callable[[], float] = time.perf_counter,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> HealthReport:
    results = await asyncio.gather(*(_run(p, timeout, clock) for p in probes))
    return HealthReport(list(results), now())
