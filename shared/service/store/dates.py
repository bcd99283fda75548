"""Lifecycle dates (rule 21): a staged user becomes active at its start date, an active one is suspended (and so
blocked everywhere) at its end date, each at local midnight (or the given local time) in its IANA time zone.

The dates index is kept with every change of a user's dates; the timer applies what has come due, including
dates it missed while Warden was down.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from shared.domain.dates import instant
from shared.domain.errors import DomainError
from shared.domain.model import User
from shared.service.context import Actor
from shared.service.ports import Clock, UserRepository

START, END = "start", "end"


class DateIndex(Protocol):
    async def track(
        self, kind: str, user_id: str, old: dt.datetime | None, new: dt.datetime | None
    ) -> None: ...

    async def due(self, kind: str, now: dt.datetime) -> list[tuple[str, dt.datetime]]: ...

    async def done(self, kind: str, user_id: str, at: dt.datetime) -> None: ...


def instants(user: User | None) -> dict[str, dt.datetime | None]:
    if user is None or user.deleted_at is not None:
        return {START: None, END: None}
    return {
        START: instant(user.start_at, user.time_zone) if user.start_at and user.state == "staged" else None,
        END: instant(user.end_at, user.time_zone) if user.end_at and user.state != "suspended" else None,
    }


async def track(index: DateIndex, before: User | None, after: User | None) -> None:
    """Keep the index in step with a user's change (create: ``before`` None; delete: ``after`` None)."""
    old, new = instants(before), instants(after)
    subject = after or before
    if subject is None:
        return
    user_id = subject.id
    for kind in (START, END):
        await index.track(kind, user_id, old[kind], new[kind])


@dataclass(frozen=True)
class DatesRound:
    activated: list[str]
    suspended: list[str]


class Changer(Protocol):
    async def apply_date(self, user_id: str, kind: str, actor: Actor) -> bool:
        """Activate (``start``) or suspend (``end``) the user if its date still holds; whether it changed."""


class Dates:
    def __init__(self, index: DateIndex, users: UserRepository, changer: Changer, clock: Clock) -> None:
        self.index = index
        self.users = users
        self.changer = changer
        self.clock = clock

    async def apply_due(self, actor: Actor) -> DatesRound:
        now = self.clock()
        changed: dict[str, list[str]] = {START: [], END: []}
        for kind in (START, END):
            for user_id, at in await self.index.due(kind, now):
                try:
                    if await self.changer.apply_date(user_id, kind, actor):
                        changed[kind].append(user_id)
                except DomainError:
                    continue  # left in the index: the next run tries again
                await self.index.done(kind, user_id, at)
        return DatesRound(changed[START], changed[END])
