"""An import job's counters count every account exactly once, whatever the queue does to its chunks: a chunk
delivered again (at-least-once delivery, a visibility timeout that ran out) adds nothing and cannot close the job
while other chunks wait, and a chunk stopped between marking a part's items and counting them has that part
counted by its next delivery."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pytest

from shared.domain.imports import CHUNK, PROGRESS_EVERY, ImportItem, ImportJob
from shared.domain.model import AuditEntry
from shared.service.context import Actor
from shared.service.runs.imports import Imports
from tests.unit.test_import_plan import T0, Claims, Directories, Queue, Tenant, account
from tests.unit.test_import_plan import Store as PlanStore


class Store(PlanStore):
    """The plan tests' store, with the items kept by position to be read back; ``stop_before_counting`` makes
    one ``add_counts`` fail, as a process stopped after the part's items were marked."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[int, ImportItem] = {}
        self.stop_before_counting: int | None = None
        self.counts_written = 0

    async def put_items(self, job_id: str, items: Sequence[ImportItem]) -> None:
        await super().put_items(job_id, items)
        self.stored.update({i.n: i for i in items})

    async def items(self, job_id: str, first: int, last: int) -> list[ImportItem]:
        return [self.stored[n] for n in range(first, last) if n in self.stored]

    async def add_counts(
        self, job_id: str, part: int, counts: dict[str, int], finished: Callable[[ImportJob], ImportJob]
    ) -> ImportJob:
        if self.stop_before_counting == part:
            self.stop_before_counting = None
            raise ConnectionResetError("the worker stopped")
        job = self.jobs[job_id]
        if job.is_counted(part):
            return job
        self.jobs[job_id] = finished(job.tallied(part, counts))
        self.counts_written += 1
        return self.jobs[job_id]


class Auditor:
    def __init__(self) -> None:
        self.recorded = 0

    async def record_all(self, entries: Sequence[AuditEntry], *, users_written: bool = False) -> None:
        self.recorded += len(entries)


class Quick(Imports):
    """The service with each account's import reduced to its outcome: every tenth is skipped (a clash), every
    hundredth-and-first fails, the rest are imported; ``seen`` counts the accounts handled."""

    seen = 0

    async def _import(
        self, job: ImportJob, item: ImportItem, actor: Actor
    ) -> tuple[ImportItem, AuditEntry | None, bool]:
        self.seen += 1
        if item.n % 10 == 0:
            return dataclasses.replace(item, state="skipped", reason="a Warden user has it"), None, False
        if item.n % 100 == 1:
            return dataclasses.replace(item, state="failed", reason="invalid"), None, False
        return dataclasses.replace(item, state="imported", user_id=f"u{item.n}"), None, False


async def planned(total: int) -> tuple[Quick, Store, ImportJob]:
    store, auditor = Store(), Auditor()
    ids = iter(f"job{n}" for n in range(10))
    service = Quick(
        store,
        Queue(),
        Directories(),
        None,  # type: ignore[arg-type]
        Claims(set()),
        None,  # type: ignore[arg-type]
        Tenant([account(i) for i in range(total)]),
        lambda: T0,
        lambda: next(ids),
        auditor,  # type: ignore[arg-type]
    )
    job = await service.start("d1", {"all": True}, False, Actor("admin"))
    return service, store, await service.plan(job.id)


def expected(numbers: range) -> tuple[int, int, int]:
    skipped = sum(1 for n in numbers if n % 10 == 0)
    failed = sum(1 for n in numbers if n % 10 and n % 100 == 1)
    return len(numbers) - skipped - failed, skipped, failed


async def test_a_chunk_delivered_again_counts_nothing_twice_and_cannot_close_the_job_early() -> None:
    service, store, job = await planned(250)
    assert (job.chunks, job.total) == (3, 250)
    await service.run_chunk(job.id, 0)
    writes = store.counts_written
    again = await service.run_chunk(job.id, 0)  # the same message, delivered again
    assert store.counts_written == writes  # every part was counted: nothing imported, nothing written
    assert (again.chunks_done, again.done) == (1, 100)
    after = await service.run_chunk(job.id, 1)
    assert (after.status, after.chunks_done, after.done) == ("running", 2, 200)
    last = await service.run_chunk(job.id, 2)
    assert (last.status, last.chunks_done, last.finished_at) == ("done", 3, T0)
    assert (last.imported, last.skipped, last.failed) == expected(range(250))
    assert service.seen == 250


async def test_a_part_marked_but_not_counted_is_counted_by_the_next_delivery() -> None:
    service, store, job = await planned(180)
    store.stop_before_counting = 1  # the chunk's second part: its 25 items marked, then the worker stops
    with pytest.raises(ConnectionResetError):
        await service.run_chunk(job.id, 0)
    stopped = store.jobs[job.id]
    assert (stopped.done, stopped.chunks_done) == (PROGRESS_EVERY, 0)
    assert all(store.stored[n].state != "pending" for n in range(2 * PROGRESS_EVERY))
    redelivered = await service.run_chunk(job.id, 0)
    assert (redelivered.chunks_done, redelivered.done) == (1, CHUNK)
    assert (redelivered.imported, redelivered.skipped, redelivered.failed) == expected(range(CHUNK))
    assert service.seen == CHUNK  # the marked part was counted from its items, not imported again
    last = await service.run_chunk(job.id, 1)
    assert (last.status, last.done, last.chunks_done) == ("done", 180, 2)


def test_the_last_chunk_has_only_the_parts_its_items_fill() -> None:
    job = ImportJob("j", "d1", False, "running", "admin", {}, T0, T0, total=2_530, chunks=26)
    assert job.parts_of(0) == range(0, 4)
    assert job.parts_of(25) == range(100, 102)  # items 2,500 … 2,529


@pytest.mark.parametrize("parts", [[0], [7, 8], [3, 3_999, 17, 8], list(range(4_000))])
def test_each_part_counts_once_in_any_order(parts: list[int]) -> None:
    job = ImportJob("j", "d1", False, "running", "admin", {}, T0, T0, total=4_000 * PROGRESS_EVERY)
    for p in parts:
        job = job.tallied(p, {"imported": 2, "skipped": 1})
        assert job.tallied(p, {"imported": 5}) is job
    assert all(job.is_counted(p) for p in parts)
    assert not any(job.is_counted(p) for p in set(range(4_200)) - set(parts))
    assert (job.imported, job.skipped) == (2 * len(parts), len(parts))
    whole = {p * PROGRESS_EVERY // CHUNK for p in parts}
    assert job.chunks_done == sum(1 for c in whole if all(job.is_counted(p) for p in job.parts_of(c)))
    assert len(job.parts_counted) <= 4_000 // 8
    if len(parts) == 4_000:
        assert job.chunks_done == 1_000
