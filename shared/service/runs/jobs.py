"""One engine for the work too big for one invocation — an import of a tenant's accounts, a reconcile's apply:
plan → items → chunks on a queue → resume after restart → counted once.

- The plan stores its items in plan order as they are produced, a chunk at a time (``ItemSink``: memory holds at
  most one chunk of them), then one queue message per chunk fans the work out over Function instances.
- A chunk is worked a part at a time (``work_chunk``): the part's pending items are processed and marked with
  their outcome, then the part's outcome is counted into the job, exactly once (a bit per part on the job's
  record, ``shared.domain.jobs``). A chunk delivered again — the queue delivers at least once, and an instance may
  stop at any point — skips the parts counted, processes only the items still pending, and counts a part marked
  but not counted from its items' states. The job is done when its last chunk is.

What a kind of job does with its items is its own (``ChunkWork``); cutting, resuming and counting are here, and
ending a job early while its other chunks may still be counting (``end_open``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Generic, Protocol, TypeVar

from shared.domain.errors import ConcurrentUpdate

END_ATTEMPTS = 10
"""Tries to end a job early while its other chunks count into it."""


class ChunkedJob(Protocol):
    def items_of(self, chunk: int) -> range: ...

    def parts_of(self, chunk: int) -> range: ...

    def part_of(self, n: int) -> int: ...

    def is_counted(self, part: int) -> bool: ...


class JobItem(Protocol):
    @property
    def n(self) -> int: ...

    @property
    def state(self) -> str: ...


class StatusJob(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...


J = TypeVar("J", bound=ChunkedJob)
S = TypeVar("S", bound=StatusJob)
I = TypeVar("I", bound=JobItem)  # noqa: E741


class ChunkWork(Protocol[J, I]):
    """What one kind of job does with a chunk's items."""

    pending: str
    """The state of an item not processed yet."""

    async def items(self, job: J, first: int, last: int) -> list[I]:
        """The stored items ``first`` ≤ n < ``last``."""

    async def process(self, job: J, items: list[I]) -> list[I]:
        """Process pending items; each one returned with its outcome as its state."""

    async def mark(self, job: J, items: list[I]) -> None:
        """Store the items' outcomes."""

    async def count(self, job: J, part: int, counts: dict[str, int]) -> J:
        """Count a part's outcome (items by state) into the job, unless the part is counted already; the job as
        it is afterwards."""


async def work_chunk(work: ChunkWork[J, I], job: J, chunk: int) -> J:
    """Work the chunk's parts not counted yet, each processed, marked, then counted; the job afterwards. A part
    at a time, counted as it finishes: the job's progress moves while its chunks run side by side (each on its
    own instance), not all at once when they end together."""
    positions = job.items_of(chunk)
    stored = await work.items(job, positions.start, positions.stop)
    for part in job.parts_of(chunk):
        if job.is_counted(part):
            continue
        items = [i for i in stored if job.part_of(i.n) == part]
        finished = await work.process(job, [i for i in items if i.state == work.pending])
        if finished:
            await work.mark(job, finished)
        states = {i.n: i.state for i in items} | {i.n: i.state for i in finished}
        counts = Counter(s for s in states.values() if s != work.pending)
        job = await work.count(job, part, dict(counts))
    return job


class ItemSink(Generic[I]):
    """A plan's items, stored in order a batch at a time as they come."""

    def __init__(self, put: Callable[[list[I]], Awaitable[None]], batch: int) -> None:
        self.put = put
        self.batch = batch
        self.total = 0
        self._pending: list[I] = []

    async def add(self, items: Iterable[I]) -> None:
        for item in items:
            self._pending.append(item)
            self.total += 1
        while len(self._pending) >= self.batch:
            await self.put(self._pending[: self.batch])
            del self._pending[: self.batch]

    async def close(self) -> int:
        """Store what is left; the number of items stored."""
        if self._pending:
            await self.put(self._pending)
            self._pending = []
        return self.total


async def end_open(
    job: S,
    etag: str,
    ended: Callable[[S], S],
    *,
    open_states: Collection[str],
    save: Callable[[S, str], Awaitable[object]],
    read: Callable[[], Awaitable[tuple[S, str]]],
) -> S:
    """Save ``ended(job)`` against ``etag``: the job as it ends. When another writer (a chunk counting) moved it
    meanwhile, read it again and end it again while it is still in one of ``open_states``; one another writer
    ended first is returned as that writer left it."""
    for _ in range(END_ATTEMPTS):
        done = ended(job)
        try:
            await save(done, etag)
        except ConcurrentUpdate:
            job, etag = await read()
            if job.status not in open_states:
                return job
            continue
        return done
    raise ConcurrentUpdate(f"job {job.id} kept changing while it was ended; the message comes again")
