"""Leases, and the other marks that expire (a stale uniqueness claim, an HR receipt left by a crash), run on real time:
an instance whose business clock a test moved days ahead (``WARDEN_CLOCK_OFFSET_SECONDS``) must not keep a user from
being synced for days by the lease it wrote."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from shared.bootstrap import Container, offset_clock
from shared.config import load_settings
from shared.service.sync.leases import LEASE
from tests.unit.test_config import minimal

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
DAYS_AHEAD = 3 * 86400.0


class LeaseRows:
    """The lease rows as ``take_lease`` keeps them: held until ``until`` unless the same holder takes it again."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, dt.datetime]] = {}

    async def lease(self, key: str, holder: str, until: dt.datetime, now: dt.datetime) -> bool:
        current = self.rows.get(key)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self.rows[key] = (holder, until)
        return True

    async def release(self, key: str, holder: str) -> None:
        if self.rows.get(key, ("", T0))[0] == holder:
            del self.rows[key]


class Users(LeaseRows):
    pass


class Groups(LeaseRows):
    async def lease(  # type: ignore[override]
        self, group_id: str, directory_id: str, holder: str, until: dt.datetime, now: dt.datetime
    ) -> bool:
        return await super().lease(f"{group_id}|{directory_id}", holder, until, now)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def instance(rows: SimpleNamespace, real: Clock, offset: float) -> Container:
    """A process's composition root over shared lease rows: its business clock moved by ``offset``."""
    container = Container(load_settings(minimal()), clock=offset_clock(offset), real_clock=real)
    container.__dict__["stores"] = rows
    return container


async def test_a_lease_written_on_a_clock_days_ahead_expires_on_real_time() -> None:
    rows, real = SimpleNamespace(users=Users(), groups=Groups()), Clock()
    shifted, plain = instance(rows, real, DAYS_AHEAD), instance(rows, real, 0)
    assert await shifted.leases.take_user("u1", "run-a")
    assert rows.users.rows["u1"][1] == T0 + LEASE, "held until real now + LEASE, not days ahead"
    assert not await plain.leases.take_user("u1", "run-b"), "held while it runs"
    real.now = T0 + LEASE + dt.timedelta(seconds=1)  # run-a's instance died without giving the lease back
    assert await plain.leases.take_user("u1", "run-b")


async def test_a_group_mirrors_lease_expires_on_real_time_too() -> None:
    rows, real = SimpleNamespace(users=Users(), groups=Groups()), Clock()
    shifted, plain = instance(rows, real, DAYS_AHEAD), instance(rows, real, 0)
    assert await shifted.leases.take_group("g1", "d1", "mirror-a")
    assert not await plain.leases.take_group("g1", "d1", "mirror-b")
    real.now = T0 + LEASE + dt.timedelta(seconds=1)
    assert await plain.leases.take_group("g1", "d1", "mirror-b")


def test_stale_claims_and_hr_receipts_are_judged_on_real_time() -> None:
    real = Clock()
    names = (
        "users",
        "groups",
        "directories",
        "index",
        "uniques",
        "dates",
        "runs",
        "audit",
        "receipts",
        "deferrals",
        "protected",
        "managed_settings",
        "discovery",
    )
    container = instance(SimpleNamespace(**{n: object() for n in names}), real, DAYS_AHEAD)
    for built in (
        "secrets",
        "secret_store",
        "sync_queue",
        "group_queue",
        "graph_endpoint",
        "directory_graph",
        "tenant_connections",
        "connection_status",
        "consent",
    ):
        container.__dict__[built] = object()  # wired, never called
    for use_case in (container.users, container.groups, container.directories):
        assert use_case.claims.clock is real
    assert container.hris.real_clock is real
    assert container.clock() - real() >= dt.timedelta(days=2), "the business clock is the moved one"
