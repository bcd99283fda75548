"""Uniqueness claims across partitions: exactly one owner, stale claims taken over only when truly stale."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.errors import Conflict
from shared.service.ports import Claim
from shared.service.store.uniqueness import STALE_AFTER, Claims

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


class MemoryUniques:
    """An in-memory ``Uniques`` port (insert is atomic: a dict assignment under the GIL, no await between)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Claim] = {}
        self.version = 0

    async def insert(self, kind: str, value: str, owner: str, at: dt.datetime) -> Claim | None:
        if (kind, value) in self.rows:
            return self.rows[(kind, value)]
        self.version += 1
        self.rows[(kind, value)] = Claim(kind, value, owner, at, str(self.version))
        return None

    async def take_over(self, claim: Claim, owner: str, at: dt.datetime) -> bool:
        current = self.rows.get((claim.kind, claim.value))
        if current is None or current.etag != claim.etag:
            return False
        self.version += 1
        self.rows[(claim.kind, claim.value)] = Claim(claim.kind, claim.value, owner, at, str(self.version))
        return True

    async def release(self, kind: str, value: str, owner: str) -> None:
        if (c := self.rows.get((kind, value))) is not None and c.owner == owner:
            del self.rows[(kind, value)]

    async def owner(self, kind: str, value: str) -> str | None:
        c = self.rows.get((kind, value))
        return c.owner if c else None


def claims(now: list[dt.datetime], holders: dict[str, str]) -> tuple[Claims, MemoryUniques]:
    uniques = MemoryUniques()

    async def holds(owner: str, kind: str, value: str) -> bool:
        return holders.get(owner) == value

    return Claims(uniques, lambda: now[0], holds), uniques


async def test_a_value_held_by_its_owner_is_a_conflict_naming_the_field() -> None:
    now = [T0]
    c, _ = claims(now, {"u1": "ada@contoso.example"})
    assert await c.claim("email", "ada@contoso.example", "u1") is True
    now[0] = T0 + 2 * STALE_AFTER
    with pytest.raises(Conflict) as caught:
        await c.claim("email", "ada@contoso.example", "u2")
    assert caught.value.extensions["field"] == "email"


async def test_a_fresh_claim_whose_owner_is_not_written_yet_is_not_taken() -> None:
    now = [T0]
    c, _ = claims(now, {})
    await c.claim("email", "x@y.example", "creating")
    now[0] = T0 + STALE_AFTER / 2
    with pytest.raises(Conflict):
        await c.claim("email", "x@y.example", "other")


async def test_a_stale_claim_left_by_a_crash_is_taken_over() -> None:
    now = [T0]
    c, uniques = claims(now, {})
    await c.claim("email", "x@y.example", "crashed")
    now[0] = T0 + STALE_AFTER + dt.timedelta(seconds=1)
    assert await c.claim("email", "x@y.example", "next") is True
    assert await uniques.owner("email", "x@y.example") == "next"


async def test_claim_all_takes_every_value_or_none() -> None:
    c, uniques = claims([T0], {"u1": "e-1"})
    await c.claim("employeeId", "e-1", "u1")
    with pytest.raises(Conflict):
        await c.claim_all({"username": "ada", "email": "ada@x.example", "employeeId": "e-1"}, "u2")
    assert uniques.rows.keys() == {("employeeId", "e-1")}, "the claims made before the conflict were released"


async def test_reclaiming_a_value_one_already_owns_does_not_release_it_on_a_later_conflict() -> None:
    c, uniques = claims([T0], {"u9": "taken"})
    await c.claim("username", "ada", "u1")
    await c.claim("email", "taken", "u9")
    with pytest.raises(Conflict):
        await c.claim_all([("username", "ada"), ("email", "taken")], "u1")
    assert await uniques.owner("username", "ada") == "u1"
