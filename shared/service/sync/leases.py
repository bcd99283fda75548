"""Leases: one run at a time for a user's sync, and for a group's mirror into a directory.

A lease runs until a moment of *real* time (``now``: UTC as the machine's clock has it), never of the business clock
that tests and rehearsals move (``WARDEN_CLOCK_OFFSET_SECONDS``): a lease written by an instance whose business clock
runs days ahead must not keep a user from being synced for days. A crashed holder's lease expires ``LEASE`` after it
was taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.domain.errors import ConcurrentUpdate
from shared.service.ports import Clock, GroupRepository, UserRepository

LEASE = dt.timedelta(seconds=120)
"""How long one run may hold a lease."""
WAIT_STEP_SECONDS = 0.25
"""How often ``holding_user`` tries again for a lease another holder has."""


class Leases:
    def __init__(self, users: UserRepository, groups: GroupRepository, now: Clock) -> None:
        self.users = users
        self.groups = groups
        self.now = now

    async def take_user(self, user_id: str, holder: str) -> str | None:
        """Hold the user's sync lease, unless another holder's lease is unexpired: the token to give it back with
        (None: held by someone else)."""
        now = self.now()
        return await self.users.lease(user_id, holder, now + LEASE, now)

    async def give_user(self, user_id: str, holder: str, token: str | None = None) -> None:
        await self.users.release(user_id, holder, token)

    @asynccontextmanager
    async def holding_user(self, user_id: str, holder: str) -> AsyncIterator[None]:
        """Hold the user's sync lease for the block, waiting for a run that has it: at most until its lease
        runs out (``LEASE`` after that run took it), then ``ConcurrentUpdate``."""
        deadline = self.now() + LEASE + dt.timedelta(seconds=WAIT_STEP_SECONDS * 4)
        while (token := await self.take_user(user_id, holder)) is None:
            if self.now() > deadline:
                raise ConcurrentUpdate(f"user {user_id} stayed leased by another run; try again")
            await asyncio.sleep(WAIT_STEP_SECONDS)
        try:
            yield
        finally:
            await self.give_user(user_id, holder, token)

    async def take_group(self, group_id: str, directory_id: str, holder: str) -> str | None:
        """Hold the lease of the group's mirror into the directory, unless another holder's is unexpired."""
        now = self.now()
        return await self.groups.lease(group_id, directory_id, holder, now + LEASE, now)

    async def give_group(
        self, group_id: str, directory_id: str, holder: str, token: str | None = None
    ) -> None:
        await self.groups.release(group_id, directory_id, holder, token)
