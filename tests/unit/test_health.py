"""The health report: concurrent probes, per-component status and latency, secret-free failure details."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

from shared.adapters.probes import describe_failure
from shared.service.health import Health, Probe, check_health


async def ok() -> None:
    return None


async def slow() -> None:
    await asyncio.sleep(5)


class FakeHttpError(Exception):
    def __init__(self) -> None:
        super().__init__("Authorization failed for https://vault/secrets?sig=SECRETSIG")
        self.status_code = 403
        self.error = type("E", (), {"code": "Forbidden"})()


async def forbidden() -> None:
    raise FakeHttpError()


async def boom() -> None:
    raise ValueError("connection string AccountKey=SECRETKEY is bad")


async def test_all_up_reports_up_with_latencies() -> None:
    report = await check_health(
        [Probe("a", ok), Probe("b", ok, {"tenantId": "t1"})], timeout=1, describe=describe_failure
    )
    body = report.to_json()
    assert body["status"] == "up"
    assert [c["name"] for c in body["components"]] == ["a", "b"]
    assert body["components"][1]["tenantId"] == "t1"
    assert all(c["latencyMs"] >= 0 for c in body["components"])


async def test_one_of_wardens_own_dependencies_down_makes_the_report_down_without_hiding_the_others() -> None:
    """SPEC §3: 503 only when Warden's own dependencies (storage, queues, Key Vault) fail."""
    report = await check_health(
        [Probe("a", ok, own=True), Probe("b", forbidden, own=True)], timeout=1, describe=describe_failure
    )
    assert report.status == "down"
    a, b = report.to_json()["components"]
    assert a["status"] == "up" and "detail" not in a
    assert b == {"name": "b", "status": "down", "latencyMs": b["latencyMs"], "detail": "HTTP 403 Forbidden"}


async def test_a_component_that_is_not_wardens_own_down_makes_the_report_degraded() -> None:
    """A tenant's Graph or a poison queue is not Warden's outage: degraded (200), the component down with why."""
    report = await check_health(
        [Probe("tableStorage", ok, own=True), Probe("graph", forbidden, {"directory": "d1"})],
        timeout=1,
        describe=describe_failure,
    )
    assert report.status == "degraded"
    assert [(c.name, c.status, c.detail) for c in report.components] == [
        ("tableStorage", "up", None),
        ("graph", "down", "HTTP 403 Forbidden"),
    ]


async def test_probes_run_concurrently_and_time_out_individually() -> None:
    started = asyncio.get_running_loop().time()
    report = await check_health(
        [Probe("s1", slow), Probe("s2", slow), Probe("a", ok)], timeout=0.2, describe=describe_failure
    )
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 1.0, "probes must run concurrently, each bounded by the timeout"
    details = {c.name: c.detail for c in report.components}
    assert details == {"s1": "no answer within 0.2 s", "s2": "no answer within 0.2 s", "a": None}


async def test_failure_details_never_carry_the_exception_text() -> None:
    report = await check_health(
        [Probe("x", boom), Probe("y", forbidden)], timeout=1, describe=describe_failure
    )
    text = str(report.to_json())
    assert "SECRETKEY" not in text and "SECRETSIG" not in text
    assert report.components[0].detail == "failed (ValueError)"


def test_describe_failure_maps_transport_errors() -> None:
    assert describe_failure(ConnectionRefusedError(), 5) == "unreachable"
    kiota_like = type("APIError", (Exception,), {"response_status_code": 401})()
    assert describe_failure(kiota_like, 5) == "HTTP 401"


async def test_report_timestamp_is_utc_iso() -> None:
    fixed = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)
    report = await check_health([Probe("a", ok)], timeout=1, now=lambda: fixed)
    assert report.to_json()["checkedAt"] == "2026-11-26T12:00:00Z"


class Directories:
    def __init__(self, tenants: list[str] | None) -> None:
        self.tenants = tenants

    async def all(self) -> list[object]:
        if self.tenants is None:
            raise ConnectionRefusedError("storage is down")
        return [
            SimpleNamespace(
                id=f"d-{t}",
                tenant_id=t,
                paused=t.startswith("lapsed"),
                status="needs_reactivation" if t.startswith("lapsed") else "active",
                status_reason="the refresh token expired after 90 days without use (AADSTS700082): reactivate",
            )
            for t in self.tenants
        ]


class Graph:
    def __init__(self) -> None:
        self.probed: list[str] = []

    async def probe(self, directory: object) -> None:
        self.probed.append(directory.id)  # type: ignore[attr-defined]

    async def forget(self, directory_id: str) -> None:
        return None


def health(tenants: list[str] | None, graph: Graph) -> Health:
    return Health(
        fixed=[Probe("tableStorage", ok)],
        directories=Directories(tenants),  # type: ignore[arg-type]
        graph=graph,
        unconnected=[("t-demo", Probe("graph", ok, {"directory": "demo", "tenantId": "t-demo"}))],
        timeout=1,
        clock=lambda: dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
        describe=describe_failure,
    )


async def test_each_connected_directory_gets_its_graph_probe_and_the_demo_tenant_only_until_connected() -> (
    None
):
    graph = Graph()
    report = await health(["t1", "t2"], graph).check()
    assert [(c.name, c.labels.get("directory")) for c in report.components] == [
        ("tableStorage", None),
        ("graph", "d-t1"),
        ("graph", "d-t2"),
        ("graph", "demo"),
    ]
    assert graph.probed == ["d-t1", "d-t2"]
    connected = await health(["t-demo"], Graph()).check()
    assert [c.labels.get("directory") for c in connected.components] == [None, "d-t-demo"]


async def test_a_store_that_cannot_list_the_directories_leaves_its_own_probe_to_tell() -> None:
    report = await health(None, Graph()).check()
    assert [c.labels.get("directory") for c in report.components] == [None, "demo"]


async def test_a_directory_needing_reactivation_is_down_with_its_reason_and_not_probed() -> None:
    """Rule 18: its token would be refused; the component says why, the report is degraded, not down."""
    graph = Graph()
    report = await health(["t1", "lapsed1"], graph).check()
    assert graph.probed == ["d-t1"]
    lapsed = next(c for c in report.components if c.labels.get("directory") == "d-lapsed1")
    assert lapsed.status == "down" and lapsed.detail is not None
    assert (
        lapsed.detail.startswith("needs_reactivation: the refresh token expired")
        and "AADSTS700082" in lapsed.detail
    )
    assert report.status == "degraded"
