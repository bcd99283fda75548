"""The chunked-job engine (``shared.service.runs.jobs``) that imports and reconcile runs share: a chunk worked a part at a
time, each part processed, marked, then counted exactly once, whatever the queue does to the chunk's message."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shared.domain.jobs import Cutting
from shared.domain.runs import RUN_CUTTING, Run, RunItem
from shared.service.runs.jobs import ItemSink, work_chunk

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


class Stopped(Exception):
    """The instance working the chunk stopped."""


class Apply:
    """A reconcile-like kind of job over ``Run``: every seventh item fails; ``stop`` makes one step fail once."""

    pending = "planned"

    def __init__(self, total: int) -> None:
        self.stored = {n: RunItem(n, "update", f"u{n}", "planned", {}) for n in range(total)}
        self.run = Run("r", "d", "reconcile", False, "applying", "timer:reconcile", T0, items=total)
        self.run = dataclasses.replace(self.run, chunks=RUN_CUTTING.chunks(total))
        self.processed = 0
        self.stop: str | None = None

    def _step(self, name: str) -> None:
        if self.stop == name:
            self.stop = None
            raise Stopped(name)

    async def items(self, job: Run, first: int, last: int) -> list[RunItem]:
        return [self.stored[n] for n in range(first, last)]

    async def process(self, job: Run, items: list[RunItem]) -> list[RunItem]:
        self.processed += len(items)
        self._step("process")
        return [dataclasses.replace(i, state="failed" if i.n % 7 == 0 else "applied") for i in items]

    async def mark(self, job: Run, items: list[RunItem]) -> None:
        self._step("mark")
        self.stored.update({i.n: i for i in items})

    async def count(self, job: Run, part: int, counts: dict[str, int]) -> Run:
        self._step("count")
        self.run = self.run.tallied(part, counts, T0)
        return self.run


@pytest.mark.parametrize("stop", ["process", "mark", "count"])
async def test_a_chunk_stopped_at_any_step_and_delivered_again_is_worked_and_counted_once(stop: str) -> None:
    kind = Apply(250)
    kind.stop = stop
    with pytest.raises(Stopped):
        await work_chunk(kind, kind.run, 1)
    redelivered = await work_chunk(kind, kind.run, 1)
    assert redelivered.progress == {"applied": 86, "failed": 14, "chunksDone": 1}
    # Items marked before the stop are not processed again; items not marked are handed to the kind again (a
    # reconcile finds them written since its plan, and writes nothing twice).
    processed = 100 if stop == "count" else 200
    assert kind.processed == processed
    again = await work_chunk(kind, kind.run, 1)  # delivered a third time, after it was counted
    assert again is redelivered and kind.processed == processed


async def test_a_run_is_done_with_its_last_chunk_in_any_order_and_not_before() -> None:
    kind = Apply(250)
    for chunk in (2, 0):
        run = await work_chunk(kind, kind.run, chunk)
        assert run.status == "applying"
    run = await work_chunk(kind, kind.run, 1)
    assert (run.status, run.finished_at, run.progress["chunksDone"]) == ("done", T0, 3)
    assert run.progress["applied"] + run.progress["failed"] == 250


def test_a_cutting_holds_whole_parts_and_the_last_chunk_only_its_items() -> None:
    cut = Cutting(100, 25)
    assert (cut.chunks(0), cut.chunks(100), cut.chunks(101)) == (0, 1, 2)
    assert cut.items_of(2, 230) == range(200, 230) and cut.parts_of(2, 230) == range(8, 10)
    assert (cut.part_of(99), cut.chunk_of(3), cut.chunk_of(4)) == (3, 0, 1)
    with pytest.raises(ValueError):
        Cutting(100, 30)


async def test_the_sink_stores_items_in_order_a_batch_at_a_time() -> None:
    puts: list[list[int]] = []

    async def put(batch: list[RunItem]) -> None:
        puts.append([i.n for i in batch])

    sink: ItemSink[RunItem] = ItemSink(put, 100)
    for start, size in ((0, 70), (70, 70), (140, 105)):  # pages of a listing, as they come
        await sink.add(RunItem(n, "update", "u", "planned", {}) for n in range(start, start + size))
        assert sum(len(p) for p in puts) == (start + size) // 100 * 100, "memory holds less than a batch"
    assert await sink.close() == 245
    assert [len(p) for p in puts] == [100, 100, 45]
    assert [n for p in puts for n in p] == list(range(245))
