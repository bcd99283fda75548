"""An import's plan streams the tenant: items stored a chunk at a time in the tenant's order, claimed accounts
and accounts outside the text filter left out, claim checks bounded, a failed tenant read failing the job."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from shared.domain.claims import claim_kind
from shared.domain.imports import CHUNK, ImportItem, ImportJob
from shared.domain.planner import M365Account
from shared.service.context import Actor
from shared.service.runs.imports import CLAIM_CHECKS, Imports

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
DIRECTORY = SimpleNamespace(id="d1")


class Store:
    def __init__(self) -> None:
        self.jobs: dict[str, ImportJob] = {}
        self.puts: list[list[ImportItem]] = []

    async def add(self, job: ImportJob) -> None:
        self.jobs[job.id] = job

    async def get(self, job_id: str) -> tuple[ImportJob, str] | None:
        return (self.jobs[job_id], "etag") if job_id in self.jobs else None

    async def save(self, job: ImportJob, etag: str | None) -> str:
        self.jobs[job.id] = job
        return "etag"

    async def put_items(self, job_id: str, items: Sequence[ImportItem]) -> None:
        self.puts.append(list(items))


class Queue:
    def __init__(self) -> None:
        self.queued: list[int] = []

    async def plan(self, job_id: str) -> None:
        pass

    async def chunks(self, job_id: str, count: int) -> None:
        self.queued.append(count)


class Claims:
    def __init__(self, claimed: set[str]) -> None:
        self.claimed = claimed
        self.in_flight = 0
        self.most = 0

    async def owner(self, kind: str, value: str) -> str | None:
        assert kind == claim_kind("d1")
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return "someone" if value in self.claimed else None


class Tenant:
    def __init__(self, accounts: list[M365Account], fail_after: int | None = None) -> None:
        self.accounts = accounts
        self.fail_after = fail_after

    async def list_users(self, directory: Any) -> AsyncIterator[list[M365Account]]:
        for n, start in enumerate(range(0, len(self.accounts), 999)):
            if self.fail_after is not None and n >= self.fail_after:
                raise ConnectionError("reset")
            yield self.accounts[start : start + 999]


class Directories:
    async def get(self, directory_id: str) -> tuple[Any, str] | None:
        return (DIRECTORY, "etag") if directory_id == "d1" else None


def account(i: int) -> M365Account:
    name = f"{'ada' if i % 2 else 'bob'}{i}"
    return M365Account(f"m{i:05d}", f"{name}@contoso.example", True, display_name=name.title())


def imports(tenant: Tenant, claims: Claims, store: Store, queue: Queue) -> Imports:
    ids = iter(f"job{n}" for n in range(100))
    return Imports(
        store,
        queue,
        Directories(),
        None,
        claims,
        None,
        tenant,
        lambda: T0,
        lambda: next(ids),
        None,  # type: ignore[arg-type]  # the plan audits nothing
    )


async def test_the_plan_stores_the_unclaimed_accounts_a_chunk_at_a_time_in_the_tenants_order() -> None:
    accounts = [account(i) for i in range(2_500)]
    claims, store, queue = Claims({f"m{i:05d}" for i in range(0, 2_500, 10)}), Store(), Queue()
    service = imports(Tenant(accounts), claims, store, queue)
    job = await service.start("d1", {"all": True}, False, Actor("admin"))
    planned = await service.plan(job.id)
    wanted = [a.id for i, a in enumerate(accounts) if i % 10]
    assert (planned.status, planned.total, planned.chunks) == ("running", 2_250, 23)
    assert [len(p) for p in store.puts] == [CHUNK] * 22 + [50]
    items = [i for p in store.puts for i in p]
    assert [i.m365_user_id for i in items] == wanted
    assert [i.n for i in items] == list(range(2_250))
    assert queue.queued == [23]
    assert 1 < claims.most <= CLAIM_CHECKS


async def test_the_text_filter_keeps_only_accounts_whose_names_start_with_it() -> None:
    store, queue = Store(), Queue()
    service = imports(Tenant([account(i) for i in range(300)]), Claims(set()), store, queue)
    job = await service.start("d1", {"all": True, "text": "ADA"}, False, Actor("admin"))
    planned = await service.plan(job.id)
    assert planned.total == 150
    assert all(i.account["display_name"].startswith("Ada") for p in store.puts for i in p)


async def test_a_tenant_read_failing_halfway_fails_the_job_and_queues_no_chunk() -> None:
    store, queue = Store(), Queue()
    service = imports(Tenant([account(i) for i in range(3_000)], fail_after=2), Claims(set()), store, queue)
    job = await service.start("d1", {"all": True}, False, Actor("admin"))
    with pytest.raises(ConnectionError):
        await service.plan(job.id)
    failed = store.jobs[job.id]
    assert (failed.status, failed.error) == ("failed", "reading the tenant failed: ConnectionError")
    assert queue.queued == []
