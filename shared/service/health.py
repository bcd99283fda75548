"""Health of Warden's dependencies: each component probed concurrently, with a deadline and its latency.

``down`` (HTTP 503, which takes the instance out of rotation in Azure) only when one of Warden's own dependencies
fails: Table Storage, Queue Storage, Key Vault. A directory that is unreachable or whose connection needs an admin
(rule 18), or messages waiting in a poison queue, make it ``degraded`` (HTTP 200) with that component ``down`` and
its reason: one tenant's problem never takes Warden down for the others.

A failure is described in a few safe words (a status code, an error code, "no answer within 5 s") and
never by the exception's text or stack, which can carry URLs with signatures or other secrets; the adapters,
which know their SDKs' exceptions, say which words (``Describe``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from shared.domain.model import Directory
from shared.service.ports import Clock, DirectoryGraph, DirectoryRepository

Status = Literal["up", "down", "warning"]
"""``warning``: working, but something needs a look (an HR source gone quiet); the app stays up."""
Overall = Literal["up", "degraded", "down"]


@dataclass(frozen=True)
class Probe:
    name: str
    check: Callable[[], Awaitable[None]]
    labels: dict[str, str] = field(default_factory=dict)
    """Extra identifying fields shown with the result (e.g. the directory and tenant of a Graph probe)."""
    own: bool = False
    """One of Warden's own dependencies: its failure is Warden's (``down``), not one tenant's (``degraded``)."""


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    status: Status
    latency_ms: float
    labels: dict[str, str]
    detail: str | None = None
    own: bool = False

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
    def status(self) -> Overall:
        if any(c.own and c.status == "down" for c in self.components):
            return "down"
        return "up" if all(c.status in ("up", "warning") for c in self.components) else "degraded"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checkedAt": self.checked_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "components": [c.to_json() for c in self.components],
        }


Report = Callable[[], Awaitable[list[ComponentHealth]]]
"""Components judged rather than probed (each HR source: up, or a warning when it has gone quiet)."""


class Degraded(Exception):
    """A probe's own secret-free account of what needs attention (e.g. messages in a poison queue)."""


Describe = Callable[[BaseException, float], str]
"""A probe's failure in a few secret-free words (the adapters know their SDKs' exceptions:
``shared.adapters.probes.describe_failure``)."""


def failed(exc: BaseException, timeout: float) -> str:
    """The least a failure says: never the exception's text, which can carry secrets."""
    if isinstance(exc, Degraded):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"failed ({type(exc).__name__})"


async def _run(
    probe: Probe, timeout: float, clock: Callable[[], float], describe: Describe
) -> ComponentHealth:
    started = clock()
    try:
        await asyncio.wait_for(probe.check(), timeout)
    except Exception as exc:  # a probe's failure is its component's status, never the health check's
        return ComponentHealth(
            probe.name, "down", (clock() - started) * 1000, probe.labels, describe(exc, timeout), probe.own
        )
    return ComponentHealth(probe.name, "up", (clock() - started) * 1000, probe.labels, own=probe.own)


async def check_health(
    probes: Sequence[Probe],
    *,
    timeout: float,
    clock: Callable[[], float] = time.perf_counter,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    describe: Describe = failed,
) -> HealthReport:
    results = await asyncio.gather(*(_run(p, timeout, clock, describe) for p in probes))
    return HealthReport(list(results), now())


async def _paused(d: Directory) -> None:
    """A directory whose connection needs an admin is not probed (its token would be refused): it is down, and
    says why."""
    raise Degraded(f"{d.status}: {d.status_reason or 'no working connection'}")


class Health:
    """Warden's dependencies, each probed concurrently: the fixed ones (storage, Key Vault, poison queues), Graph
    for every connected directory, and the fallback Graph probes of tenants not connected yet (the demo tenant of a
    local run)."""

    def __init__(
        self,
        *,
        fixed: Sequence[Probe],
        directories: DirectoryRepository,
        graph: DirectoryGraph,
        unconnected: Sequence[tuple[str, Probe]] = (),
        timeout: float,
        clock: Clock,
        describe: Describe = failed,
        reports: Sequence[Report] = (),
    ) -> None:
        self.reports = reports
        self.fixed = fixed
        self.directories = directories
        self.graph = graph
        self.unconnected = unconnected
        self.timeout = timeout
        self.clock = clock
        self.describe = describe

    async def probes(self) -> list[Probe]:
        probes = list(self.fixed)
        try:
            directories = await asyncio.wait_for(self.directories.all(), self.timeout)
        except Exception:  # the store's own probe reports it; without it there is no directory to probe
            directories = []
        for d in directories:
            labels = {"directory": d.id, "tenantId": d.tenant_id}
            check = partial(_paused, d) if d.paused else partial(self.graph.probe, d)
            probes.append(Probe("graph", check, labels))
        connected = {d.tenant_id for d in directories}
        probes.extend(probe for tenant_id, probe in self.unconnected if tenant_id not in connected)
        return probes

    async def check(self) -> HealthReport:
        report = await check_health(
            await self.probes(), timeout=self.timeout, now=self.clock, describe=self.describe
        )
        for read in self.reports:
            try:
                extra = await asyncio.wait_for(read(), self.timeout)
            except Exception:  # the store's own probe reports a storage failure
                continue
            report.components.extend(extra)
        return report
