"""Deactivation against a sync that is under way (rule 12), through Warden's real adapters on Azurite and the
simulated cloud:

- a user's sync that read the directories before the deactivation began is waited for: it holds the user's sync
  lease, the deactivation forgets that user only once it is given back, so the link the sync writes meanwhile does
  not outlive the directory (before, it did: README's known gap);
- a sync that starts once the deactivation has begun finds the directory gone: no request to its tenant, no link;
- the direct binding and the link go in one write, never a link without its binding (which a sync reads as
  "block this account");
- a deactivation that stopped halfway is finished by asking again;
- a link a late run still writes to the removed directory goes with the user's next sync, which sends nothing;
- a reconcile run or an import whose directory is deactivated before its jobs ran ends failed, saying so, instead of
  failing five times into the poison queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from shared.bootstrap import Container
from shared.config import load_settings
from shared.domain.model import Link
from shared.domain.runs import DIRECTORY_GONE
from shared.service.context import Actor
from shared.service.ports import UserRecord
from tests.conftest import DemoStack
from tests.integration.tenants import connected_app

ADMIN = Actor("admin:test")
NAME = "Leaving"


@dataclass
class World:
    container: Container
    stack: DemoStack
    directory_id: str
    tenant_id: str
    domain: str


@pytest.fixture
async def world(demo_stack: DemoStack) -> AsyncIterator[World]:
    prefix = "dz" + uuid.uuid4().hex[:8]
    container = Container(load_settings({**demo_stack.settings, "WARDEN_TABLE_PREFIX": prefix}))
    t, directory_id = await connected_app(container, demo_stack, NAME)
    try:
        yield World(container, demo_stack, directory_id, t.tenant_id, t.domain)
    finally:
        await container.aclose()


async def synced_user(w: World) -> UserRecord:
    """A user bound to the directory, its account created and linked: its record as the sync left it."""
    local = uuid.uuid4().hex[:8]
    fields = {
        "first_name": "Ada",
        "last_name": local,
        "display_name": f"Ada {local}",
        "email": f"{local}@{w.domain}",
        "username": local,
        "state": "active",
    }
    view = await w.container.users.create(fields, ADMIN, sync=False, direct=[w.directory_id])
    user_id = view.user.id
    await w.container.sync.sync_user(user_id, Actor("system"))
    record = await w.container.stores.users.get(user_id)
    assert record is not None and record.links[w.directory_id].status == "synced"
    return record


def tenant_requests(w: World) -> int:
    response = w.stack.sim.control("GET", "/_sim/requests")
    response.raise_for_status()
    return sum(1 for r in response.json()["value"] if r["tenantId"] == w.tenant_id)


async def test_a_sync_under_way_is_waited_for_and_its_link_does_not_outlive_the_directory(
    world: World,
) -> None:
    w = world
    container, directory_id = w.container, w.directory_id
    record = await synced_user(w)
    user_id, link = record.user.id, record.links[directory_id]
    holder = "a sync under way"
    token = await container.sync.leases.take_user(user_id, holder)
    assert token is not None
    deactivation = asyncio.create_task(container.directories.deactivate(directory_id, NAME, ADMIN))
    try:
        # The directory is gone to every reader at once, while the user waits for the sync's lease.
        async with asyncio.timeout(20):
            while await container.stores.directories.get(directory_id) is not None:
                await asyncio.sleep(0.05)
        assert directory_id not in {d.id for d in await container.stores.directories.all()}
        # The sync, which read the directories before, writes its link now (as a run's record would).
        await container.stores.users.save_links(record, [dataclasses.replace(link, reason="written late")])
        assert not deactivation.done(), "the deactivation forgot the user while its sync held the lease"
    finally:
        await container.sync.leases.give_user(user_id, holder, token)
    async with asyncio.timeout(30):
        await deactivation
    after = await container.stores.users.get(user_id)
    assert after is not None
    assert directory_id not in after.links and directory_id not in after.direct
    assert await container.stores.directories.get(directory_id, deactivating=True) is None


async def test_a_sync_that_starts_once_deactivation_began_writes_nothing_there(world: World) -> None:
    w = world
    container, directory_id = w.container, w.directory_id
    record = await synced_user(w)
    user_id = record.user.id
    await container.stores.users.update(
        dataclasses.replace(record.user, job_title="Changed"), ["job_title"], None
    )
    await container.stores.directories.mark_deactivating(directory_id, dt.datetime.now(dt.UTC))
    before = tenant_requests(w)
    report = await container.sync.sync_user(user_id, Actor("system"))
    assert report.results == []
    assert tenant_requests(w) == before, "the sync wrote to a directory being deactivated"
    # Asked again, the deactivation that stopped after its mark finishes the job.
    await container.directories.deactivate(directory_id, NAME, ADMIN)
    after = await container.stores.users.get(user_id)
    assert after is not None and not after.links and not after.direct


async def test_binding_and_link_go_in_one_write(world: World) -> None:
    w = world
    container, directory_id = w.container, w.directory_id
    user_id = (await synced_user(w)).user.id
    store = container.stores.users
    assert await store.forget_directory(user_id, directory_id) is True
    record = await store.get(user_id)
    assert record is not None and directory_id not in record.links and directory_id not in record.direct
    assert await store.forget_directory(user_id, directory_id) is False
    # a link alone (no binding) goes too
    await store.save_links(record, [Link(user_id, directory_id, status="blocked", m365_user_id="x")])
    assert await store.forget_directory(user_id, directory_id) is True


async def test_a_link_written_late_to_a_removed_directory_goes_with_the_users_next_sync(world: World) -> None:
    w = world
    container, directory_id = w.container, w.directory_id
    record = await synced_user(w)
    user_id, link = record.user.id, record.links[directory_id]
    await container.directories.deactivate(directory_id, NAME, ADMIN)
    # A reconcile chunk that read the directory before it was marked writes its link now.
    gone = await container.stores.users.get(user_id)
    assert gone is not None and not gone.links
    await container.stores.users.save_links(gone, [link])
    before = tenant_requests(w)
    report = await container.sync.sync_user(user_id, Actor("system"))
    assert report.results == [] and tenant_requests(w) == before
    after = await container.stores.users.get(user_id)
    assert after is not None and not after.links and not after.direct


class Recorder:
    """A reconcile or import queue that keeps its messages (the test delivers them itself)."""

    def __init__(self) -> None:
        self.messages: list[tuple[object, ...]] = []

    async def plan(self, *ids: str) -> None:
        self.messages.append(("plan", *ids))

    async def chunks(self, *args: object) -> None:
        self.messages.append(("chunks", *args))


async def test_a_run_and_an_import_of_a_deactivated_directory_end_failed_saying_why(world: World) -> None:
    w = world
    container, directory_id = w.container, w.directory_id
    await synced_user(w)
    container.__dict__["reconcile_queue"] = runs_queue = Recorder()
    container.__dict__["import_queue"] = imports_queue = Recorder()
    for built in ("reconciler", "imports"):  # built over the queues given here
        container.__dict__.pop(built, None)
    run = await container.reconciler.start(directory_id, False, Actor("timer:reconcile"))
    job = await container.imports.start(directory_id, {}, True, ADMIN)
    assert runs_queue.messages and imports_queue.messages
    await container.directories.deactivate(directory_id, NAME, ADMIN)
    before = tenant_requests(w)

    planned = await container.reconciler.plan(directory_id, run.id)
    assert (planned.status, planned.error) == ("failed", DIRECTORY_GONE) and planned.finished_at is not None
    chunk = await container.reconciler.apply_chunk(directory_id, run.id, 0)
    assert chunk.status == "failed", "a later job of the ended run does nothing"
    imported = await container.imports.plan(job.id)
    assert (imported.status, imported.error) == ("failed", DIRECTORY_GONE)
    assert tenant_requests(w) == before
