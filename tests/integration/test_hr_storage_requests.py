"""What one HR event costs the store, counted on Warden's own Azurite clients (an aiohttp trace on the container's
storage session, as ``make bench`` counts them): a mover's ``employee.updated`` makes at most 8 storage requests
before it is accepted and reads no row twice; the sync it queues reads each row once (and the directories' table
twice: their list, and the account's protection, rule 23); a leaver's block goes to
Graph without a read of the account first. Counts, not times: a regression that adds requests fails here."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest

from shared.bootstrap import STORAGE_KEEPALIVE_SECONDS, Container
from shared.config import load_settings
from shared.domain.hr import Employee, HrEvent
from shared.domain.model import DirectoryOptions, MassChangeGuard
from shared.service.context import Actor
from shared.service.hr.events import Delivery
from shared.service.ports import AuditQuery
from tests.conftest import DemoStack
from tests.integration.tenants import connected_app

MOVER_REQUESTS = 8
"""An employee.updated of a known person: receipt (inserted, marked done), the employeeId's claim, the user's two
rows, the change with its audit entries in one transaction, the entries' day copies, the sync's message."""


@dataclass
class Trace:
    """Storage requests as (method, table or queue, entity) in the order they were sent."""

    prefix: str
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def session(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()

        async def start(_: Any, __: Any, params: Any) -> None:
            path = unquote(params.url.path).split("/", 2)[-1]
            name, _, rest = path.partition("(")
            entity = rest.rstrip(")") or params.url.query.get("$filter", "")  # a row, or a query's filter
            self.requests.append((params.method, name.removeprefix(self.prefix), entity))

        trace.on_request_start.append(start)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_KEEPALIVE_SECONDS), trace_configs=[trace]
        )

    def reads(self) -> list[tuple[str, str]]:
        return [(t, e) for m, t, e in self.requests if m == "GET"]


@dataclass
class World:
    container: Container
    trace: Trace
    directory_id: str
    domain: str
    tenant_id: str


@pytest.fixture
async def world(demo_stack: DemoStack) -> AsyncIterator[World]:
    prefix = "hr" + uuid.uuid4().hex[:8]
    container = Container(load_settings({**demo_stack.settings, "WARDEN_TABLE_PREFIX": prefix}))
    trace = Trace(prefix)
    container.__dict__["storage_http"] = trace.session()
    options = DirectoryOptions(mass_change_guard=MassChangeGuard(100, 1000))
    t, directory_id = await connected_app(container, demo_stack, "HR requests", options)
    try:
        yield World(container, trace, directory_id, t.domain, t.tenant_id)
    finally:
        await container.aclose()


def event(kind: str, w: World, employee_id: str, **optional: str) -> HrEvent:
    e = Employee(
        employee_id,
        f"{employee_id.lower()}@{w.domain}",
        "Ada",
        "Lovelace",
        optional=optional,
        directories=(w.directory_id,),
    )
    return HrEvent(kind, e)  # type: ignore[arg-type]


async def accept(w: World, e: HrEvent) -> str:
    delivery = Delivery(f"msg_{uuid.uuid4().hex}", dt.datetime.now(dt.UTC))
    accepted = await w.container.hris.accept(e, delivery, None)
    assert accepted.outcome == "accepted" and accepted.user_id
    return accepted.user_id


async def hired_and_synced(w: World) -> tuple[str, str]:
    """A person hired and synced (their account created), and a warm process (lists read, day marked)."""
    employee_id = "E" + uuid.uuid4().hex[:8].upper()
    user_id = await accept(w, event("employee.hired", w, employee_id))
    await w.container.sync.sync_user(user_id, Actor("system"))
    record = await w.container.stores.users.get(user_id)
    assert record is not None and record.links[w.directory_id].status == "synced"
    await accept(w, event("employee.updated", w, employee_id, job_title="Warm-up"))
    return employee_id, user_id


async def test_an_employee_update_makes_at_most_eight_storage_requests_and_reads_no_row_twice(
    world: World,
) -> None:
    employee_id, user_id = await hired_and_synced(world)
    world.trace.requests.clear()
    await accept(world, event("employee.updated", world, employee_id, job_title="Analytical Engineer"))
    sent = world.trace.requests
    assert len(sent) <= MOVER_REQUESTS, sent
    assert len(world.trace.reads()) == len(set(world.trace.reads())), "a row read twice"
    assert not [r for r in sent if r[1] == "uniques" and r[0] != "GET"], (
        "no identifier changed: no claim moved"
    )
    assert not [r for r in sent if r[1] == "dirindex"], "the index follows in the user's sync"
    by_kind = Counter((m, t) for m, t, _ in sent)
    assert by_kind[("POST", "receipts")] == 1 and by_kind[("PATCH", "receipts")] == 1
    assert by_kind[("POST", "user-sync/messages")] == 1
    record = await world.container.stores.users.get(user_id)
    assert record is not None and record.user.job_title == "Analytical Engineer"
    (entry,) = (await world.container.stores.audit.page(AuditQuery(user_id=user_id), None, 1)).items
    assert entry.action == "hris.event.applied" and entry.before == {"jobTitle": "Warm-up"}
    assert entry.after is not None and entry.after["changed"] == {"jobTitle": "Analytical Engineer"}
    (by_day,) = (await world.container.stores.audit.page(AuditQuery(), None, 1)).items
    assert by_day.id == entry.id, "the same entry by day"


async def test_the_sync_an_update_queues_reads_each_row_once_and_each_table_once(world: World) -> None:
    employee_id, user_id = await hired_and_synced(world)
    await accept(world, event("employee.updated", world, employee_id, job_title="Countess"))
    world.trace.requests.clear()
    report = await world.container.sync.sync_user(user_id, Actor("system"))
    assert [r.item.action for r in report.results] == ["update"]
    reads = world.trace.reads()
    assert len(reads) == len(set(reads)), f"a row read twice: {reads}"
    per_table = Counter(t for t, _ in reads)
    assert per_table["users"] == 2 and {e for t, e in reads if t == "users"} == {
        f"PartitionKey='{user_id}',RowKey='user'",
        f"PartitionKey='{user_id}',RowKey='relations'",
    }, "the user's two rows, side by side"
    rule_23 = [e for t, e in reads if t == "directories" and "state|roles.read" in e]
    assert len(rule_23) == 1, "the account's protection (rule 23): one query of the directory's rows"
    assert per_table["directories"] == 2, "the directories listed once, rule 23's rows once"
    assert all(n == 1 for t, n in per_table.items() if t not in ("users", "directories")), per_table


async def test_a_leavers_block_is_written_without_reading_the_account_first(
    world: World, demo_stack: DemoStack
) -> None:
    employee_id, user_id = await hired_and_synced(world)
    await accept(world, event("employee.terminated", world, employee_id))
    mark = max((e["seq"] for e in demo_stack.sim.requests()), default=0)
    report = await world.container.sync.sync_user(user_id, Actor("system"))
    assert [(r.item.action, r.outcome) for r in report.results] == [("block", "applied")]
    graph = [
        (e["kind"], e["method"], e["path"].split("?")[0])
        for e in demo_stack.sim.requests()
        if e["seq"] > mark and e.get("tenantId") == world.tenant_id and e["kind"] in ("graph", "batch-item")
    ]
    m365_id = report.results[0].m365_user_id
    assert ("graph", "GET", f"/v1.0/users/{m365_id}") not in graph, graph
    assert [(k, m) for k, m, _ in graph] == [("batch-item", "PATCH"), ("batch-item", "POST")], graph
    record = await world.container.stores.users.get(user_id)
    assert record is not None and record.links[world.directory_id].status == "blocked"
    world.trace.requests.clear()
    again = await world.container.sync.sync_user(user_id, Actor("system"))
    assert [r.item.action for r in again.results] == ["none"], "blocked already: read, found disabled"
