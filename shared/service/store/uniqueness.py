"""Uniqueness of usernames, emails, employee ids, group names and verified domains across partitions.

Table Storage has no unique index across partitions, so each value is claimed in its own row before the
owner is written (``Uniques.insert`` is atomic: of two concurrent claims exactly one wins). A claim can be
left behind by a crash between claim and write; it is stale when its owner no longer holds the value, and is
then taken over — but only once it is older than ``STALE_AFTER`` of real time (never of the business clock a test
moves), so an owner still being written is never mistaken for a dead one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping

from shared.domain.errors import Conflict
from shared.service.ports import Clock, Uniques

STALE_AFTER = dt.timedelta(seconds=60)

Holds = Callable[[str, str, str], Awaitable[bool]]
"""``holds(owner, kind, value)``: does ``owner`` still have ``value`` as its ``kind``?"""


class Claims:
    def __init__(self, uniques: Uniques, clock: Clock, holds: Holds) -> None:
        self.uniques = uniques
        self.clock = clock
        self.holds = holds

    async def claim(self, kind: str, value: str, owner: str) -> bool:
        """Claim ``value`` for ``owner``; whether this call claimed it (False: ``owner`` already had it)."""
        now = self.clock()
        existing = await self.uniques.insert(kind, value, owner, now)
        if existing is None:
            return True
        if existing.owner == owner:
            return False
        if now - existing.at < STALE_AFTER or await self.holds(existing.owner, kind, value):
            raise Conflict(f"{kind} '{value}' is already used", field=kind, owner=existing.owner)
        if not await self.uniques.take_over(existing, owner, now):
            raise Conflict(f"{kind} '{value}' is already used", field=kind)
        return True

    async def claim_all(self, values: Mapping[str, str] | Iterable[tuple[str, str]], owner: str) -> None:
        """Claim each (kind, value), or none: a conflict releases what this call claimed and re-raises."""
        taken: list[tuple[str, str]] = []
        try:
            for kind, value in _pairs(values):
                if await self.claim(kind, value, owner):
                    taken.append((kind, value))
        except BaseException:
            await self.release_all(taken, owner)
            raise

    async def release_all(self, values: Mapping[str, str] | Iterable[tuple[str, str]], owner: str) -> None:
        for kind, value in _pairs(values):
            await self.uniques.release(kind, value, owner)


def _pairs(values: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(values.items()) if isinstance(values, Mapping) else list(values)
