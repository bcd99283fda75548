"""The mass-change guard for per-user syncs (rule 19, over a sliding hour): a burst of blocks — a broken HR export
terminating half the company, or a group unbound by mistake — is held, not applied.

Each block a per-user sync applies is counted per directory and minute: one read of the hour's counts, then one
write of this minute's, made only if that count is still what was read (two syncs deciding at once in the same
minute see each other: the second reads again). A block that would take the last hour's blocks over the
directory's threshold (more than ``percent`` of its linked users AND more than ``count``) is not counted and not
written: the user's item joins the directory's held ``user`` run and its link says why. An admin approves the run
(each held user is synced again with the guard lifted: a block whose reason has gone since is not written) or
discards it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from shared.domain.model import Directory
from shared.domain.planner import PlanItem
from shared.domain.runs import Run, RunItem
from shared.service.context import Actor
from shared.service.ports import Clock, DirectoryIndex, HeldRuns, Ids

WINDOW = dt.timedelta(hours=1)
HELD_REASON = "block held by the mass-change guard"


@dataclass(frozen=True)
class BlockCounts:
    """Blocks per minute as read (``versions``: what the store needs to write a minute's count only if it is
    still as read)."""

    per_minute: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.per_minute.values())


COUNT_ATTEMPTS = 30


class GuardStore(Protocol):
    async def block_counts(self, directory_id: str, since: dt.datetime) -> BlockCounts:
        """The blocks per-user syncs applied in the directory since ``since``, counted per minute."""

    async def add_block(self, directory_id: str, at: dt.datetime, seen: BlockCounts) -> bool:
        """Count one more block in ``at``'s minute if its count is still as ``seen`` read it; else False."""

    async def latest(self, directory_id: str, limit: int) -> list[Run]: ...

    async def add(self, run: Run) -> None: ...

    async def get(self, directory_id: str, run_id: str) -> tuple[Run, str] | None: ...

    async def save(self, run: Run, etag: str | None) -> str: ...

    async def put_items(self, run_id: str, items: list[RunItem]) -> None: ...

    async def withdraw(self, run: Run, etag: str) -> bool:
        """Delete a run that never started, unless it changed since ``etag`` (then False)."""
        ...


class SlidingGuard:
    def __init__(
        self, store: GuardStore, index: DirectoryIndex, clock: Clock, ids: Ids, held: HeldRuns | None = None
    ) -> None:
        self.held = held
        self.store = store
        self.index = index
        self.clock = clock
        self.ids = ids

    async def reserve(self, directory: Directory) -> bool:
        """Say whether one more block stays within the directory's guard over the last hour, and if so count it.
        The count is written only if this minute's is still as read, else read again: of two syncs deciding at
        once one counts first and the other sees it. (Two syncs at the turn of a minute write different minutes:
        the guard may let one block more through there.)"""
        guard = directory.options.mass_change_guard
        linked: int | None = None
        for _ in range(COUNT_ATTEMPTS):
            now = self.clock()
            seen = await self.store.block_counts(directory.id, now - WINDOW)
            total = seen.total + 1
            if total > guard.count:
                if linked is None:
                    linked = (await self.index.counts(directory.id)).get("linked", 0)
                if 100.0 * total / max(linked, 1) > guard.percent:
                    return False
            if await self.store.add_block(directory.id, now, seen):
                return True
        raise RuntimeError("the block count kept changing")

    async def hold(self, directory: Directory, item: PlanItem, actor: Actor) -> str:
        """Add the held block to the directory's open held ``user`` run (a new one if none is open); its id."""
        created: str | None = None
        for _ in range(20):
            open_runs = [
                r
                for r in await self.store.latest(directory.id, 20)
                if r.kind == "user" and r.status == "held"
            ]
            if not open_runs:
                now = self.clock()
                run = Run(
                    self.ids(),
                    directory.id,
                    "user",
                    False,
                    "held",
                    actor.name,
                    now,
                    started_at=now,
                    planned_at=now,
                    guard={
                        "reason": f"more blocks within an hour than the directory's guard allows ({HELD_REASON})"
                    },
                )
                await self.store.add(run)
                created = run.id
                continue  # read again: a sync holding at the same moment may have opened one too
            # Of two runs opened at the same moment, every sync picks the same one (the fullest, then the
            # oldest), and the other's opener withdraws its empty run: the admin approves one run, not one per sync.
            held = min(open_runs, key=lambda r: (-r.items, r.created_at, r.id))
            if created is not None and created != held.id:
                await self._withdraw_empty(directory.id, created)
                created = None
            found = await self.store.get(directory.id, held.id)
            if found is None:
                continue
            run, etag = found
            n = run.items
            counts = dict(run.counts)
            counts["block"] = counts.get("block", 0) + 1
            try:
                await self.store.save(dataclasses.replace(run, items=n + 1, counts=counts), etag)
            except Exception:
                continue  # another sync added an item at the same moment: take the next number
            await self.store.put_items(
                run.id, [RunItem(n, "block", item.user_id, "planned", item.to_payload())]
            )
            if created == run.id and self.held is not None:  # the run this sync opened: announced once
                await self.held.held(directory, run)
            return run.id
        raise RuntimeError("could not add to the held run")

    async def _withdraw_empty(self, directory_id: str, run_id: str) -> None:
        """Withdraw a held run this sync opened at the same moment as another and that holds nothing: it was
        nobody's decision, so it leaves no trace (the directory's runs show the one held run, not a discarded
        twin). One that got an item meanwhile after all stays, and is approved with the other."""
        found = await self.store.get(directory_id, run_id)
        if found is None or found[0].items or found[0].status != "held":
            return
        await self.store.withdraw(*found)
