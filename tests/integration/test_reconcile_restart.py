"""A reconcile that dies halfway through a chunk (after Graph's writes, before the items are marked) resumes when
the chunk is delivered again: nothing is written twice, and the run finishes with every item accounted for.

Warden's real adapters against Azurite and the simulated cloud; the crash is injected at the worst point, and the
queue is a recorder, so that the chunk messages are delivered by the test (no host on this storage reads them).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.bootstrap import Container
from shared.config import load_settings
from shared.domain.model import DirectoryOptions, MassChangeGuard
from shared.service.context import Actor
from tests.conftest import DemoStack
from tests.integration.tenants import connected_app

USERS = 130


class RecordingQueue:
    def __init__(self) -> None:
        self.plans: list[tuple[str, str]] = []
        self.chunk_messages: list[tuple[str, str, int]] = []

    async def plan(self, directory_id: str, run_id: str) -> None:
        self.plans.append((directory_id, run_id))

    async def chunks(self, directory_id: str, run_id: str, count: int) -> None:
        self.chunk_messages.extend((directory_id, run_id, n) for n in range(count))


@pytest.fixture
async def container(demo_stack: DemoStack) -> AsyncIterator[Container]:
    settings = {**demo_stack.settings, "WARDEN_TABLE_PREFIX": "rs" + uuid.uuid4().hex[:8]}
    c = Container(load_settings(settings))
    c.__dict__["reconcile_queue"] = RecordingQueue()  # before anything is built over the real one
    yield c
    await c.aclose()


def graph_client(stack: DemoStack, tenant_id: str, client_id: str, secret: str) -> httpx.Client:
    http = httpx.Client(
        base_url=stack.sim.url, verify=ssl.create_default_context(cafile=stack.sim.ca), timeout=30
    )
    token = http.post(
        f"/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    ).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


async def test_a_chunk_redelivered_after_a_crash_writes_nothing_twice(
    demo_stack: DemoStack, container: Container
) -> None:
    sim = demo_stack.sim
    admin = Actor("admin:test")
    options = DirectoryOptions(mass_change_guard=MassChangeGuard(100, 100_000))
    t, d = await connected_app(container, demo_stack, "Restart", options)
    tenant_id, domain = t.tenant_id, t.domain
    graph = graph_client(demo_stack, tenant_id, t.client_id, t.secret)
    users = []
    for n in range(USERS):
        email = f"person{n}.{uuid.uuid4().hex[:4]}@{domain}"
        created = graph.post(
            "/v1.0/users",
            json={
                "accountEnabled": True,
                "displayName": f"P {n}",
                "mailNickname": email.split("@")[0],
                "userPrincipalName": email,
                "passwordProfile": {"password": "Xx1!" + uuid.uuid4().hex},
            },
        )
        assert created.status_code == 201, created.text
        fields: dict[str, Any] = {
            "username": email.split("@")[0],
            "email": email,
            "first_name": "P",
            "last_name": str(n),
            "display_name": f"P {n}",
            "state": "active",
        }
        u = await container.users.create(fields, admin)
        await container.users.bind(u.user.id, d, admin)
        users.append(u.user.id)
    queue = container.__dict__["reconcile_queue"]
    reconciler = container.reconciler
    run = await reconciler.start(d, False, Actor("timer:reconcile"))
    planned = await reconciler.plan(d, run.id)
    assert planned.status == "applying" and planned.counts["take_over"] == USERS and planned.chunks == 2
    assert queue.plans == [(d, run.id)] and queue.chunk_messages == [(d, run.id, 0), (d, run.id, 1)]
    mark = max((e["seq"] for e in sim.requests()), default=0)

    await reconciler.apply_chunk(d, run.id, 0)
    runs = container.stores.runs
    real_set_states = runs.set_item_states

    async def crash(*_: Any) -> None:
        raise RuntimeError("the instance died before marking its items")

    runs.set_item_states = crash
    with pytest.raises(RuntimeError):
        await reconciler.apply_chunk(d, run.id, 1)
    runs.set_item_states = real_set_states
    done = await reconciler.apply_chunk(d, run.id, 1)  # the same message, delivered again

    assert done.status == "done" and done.progress["chunksDone"] == 2
    assert done.progress["applied"] == USERS and done.progress.get("skipped", 0) == 0
    writes = [
        e
        for e in sim.requests()
        if e["seq"] > mark and e["tenantId"] == tenant_id and e["kind"] == "batch-item"
    ]
    patched = [e["path"] for e in writes if e["method"] == "PATCH"]
    assert len(patched) == USERS and len(set(patched)) == USERS, "each account written once"
    for uid in users:
        record = await container.stores.users.get(uid)
        assert (
            record is not None
            and record.links[d].status == "synced"
            and record.links[d].origin == "taken_over"
        )
