"""Rule 19 for per-user syncs: blocks held at the same moment land in one held run, not one run per sync."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from types import SimpleNamespace
from typing import Any

from shared.domain.planner import PlanItem
from shared.domain.runs import Run, RunItem
from shared.service.context import Actor
from shared.service.sync.guard import SlidingGuard

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


class Runs:
    """Runs with ETags; every call yields to the loop first, so that concurrent holds interleave."""

    def __init__(self) -> None:
        self.runs: dict[str, tuple[Run, int]] = {}
        self.items: dict[str, list[RunItem]] = {}
        self.withdrawn: list[str] = []

    async def latest(self, directory_id: str, limit: int) -> list[Run]:
        await asyncio.sleep(0)
        return sorted((r for r, _ in self.runs.values()), key=lambda r: r.created_at, reverse=True)[:limit]

    async def add(self, run: Run) -> None:
        await asyncio.sleep(0)
        self.runs[run.id] = (run, 1)

    async def get(self, directory_id: str, run_id: str) -> tuple[Run, str] | None:
        await asyncio.sleep(0)
        found = self.runs.get(run_id)
        return (found[0], str(found[1])) if found else None

    async def save(self, run: Run, etag: str | None) -> str:
        await asyncio.sleep(0)
        current = self.runs[run.id][1]
        if etag is not None and etag != str(current):
            raise RuntimeError("412")
        self.runs[run.id] = (run, current + 1)
        return str(current + 1)

    async def put_items(self, run_id: str, items: list[RunItem]) -> None:
        self.items.setdefault(run_id, []).extend(items)

    async def withdraw(self, run: Run, etag: str) -> bool:
        await asyncio.sleep(0)
        if etag != str(self.runs[run.id][1]):
            return False
        del self.runs[run.id]
        self.withdrawn.append(run.id)
        return True


async def test_blocks_held_at_the_same_moment_share_one_run_and_no_empty_run_stays_open() -> None:
    runs = Runs()
    ticks = itertools.count()
    ids = itertools.count()
    guard = SlidingGuard(
        runs,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        lambda: T0 + dt.timedelta(milliseconds=next(ticks)),
        lambda: f"run{next(ids)}",
    )
    directory: Any = SimpleNamespace(id="d1")
    items = [PlanItem("block", f"u{n}", "d1", "blocked", f"m{n}") for n in range(5)]
    held = await asyncio.gather(*(guard.hold(directory, i, Actor("hris:test")) for i in items))
    assert len(set(held)) == 1, held
    (run_id,) = set(held)
    run = runs.runs[run_id][0]
    assert (run.status, run.items, run.counts) == ("held", 5, {"block": 5})
    assert sorted(i.user_id for i in runs.items[run_id]) == [f"u{n}" for n in range(5)]
    assert runs.withdrawn, "the syncs did open runs at the same moment (else this test proves nothing)"
    assert list(runs.runs) == [run_id], "every other run they opened was empty and is gone"
    assert not set(runs.withdrawn) & set(runs.items), "no withdrawn run held an item"
