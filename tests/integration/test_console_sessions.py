"""The console's sessions in Table Storage and their sign-in flows in Key Vault (the simulated vault): the hourly
sweep removes what nobody came back to."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from shared.adapters.tables.sessions import ConsoleSession, flow_secret, new_session_id, session_key, sweep
from shared.bootstrap import Container
from shared.config import load_settings
from tests.conftest import DemoStack

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def app(demo_stack: DemoStack) -> AsyncIterator[Container]:
    built = Container(load_settings({**demo_stack.settings, "WARDEN_TABLE_PREFIX": "sessionsit"}))
    yield built
    await built.aclose()


def session(expires: dt.datetime, *, pending: bool) -> ConsoleSession:
    return ConsoleSession(
        id=new_session_id(),
        expires=expires,
        csrf="csrf",
        pending=pending,
        object_id=None if pending else "0b1c2d3e-0000-4000-8000-000000000001",
        roles=frozenset() if pending else frozenset({"Warden.Reader"}),
    )


async def test_the_sweep_removes_expired_sessions_and_the_flows_of_abandoned_sign_ins(app: Container) -> None:
    sessions, secrets = app.stores.sessions, app.secret_store
    abandoned = session(NOW - dt.timedelta(seconds=1), pending=True)
    stale = session(NOW - dt.timedelta(hours=1), pending=False)
    signing_in = session(NOW + dt.timedelta(minutes=5), pending=True)
    live = session(NOW + dt.timedelta(hours=7), pending=False)
    for s in (abandoned, stale, signing_in, live):
        await sessions.create(s)
    for s in (abandoned, signing_in):
        await secrets.set(flow_secret(session_key(s.id)), '{"code_verifier": "kept-in-the-vault"}')

    assert await sweep(sessions, secrets, NOW) == 2
    before = NOW - dt.timedelta(days=1)  # read as if it were earlier: a row is there or not, expiry aside
    assert await sessions.get(abandoned.id, before) is None
    assert await sessions.get(stale.id, before) is None
    assert await secrets.find(flow_secret(session_key(abandoned.id))) is None
    assert await sessions.get(signing_in.id, before) == signing_in
    assert await sessions.get(live.id, before) == live
    assert await secrets.find(flow_secret(session_key(signing_in.id))) is not None
    assert await sweep(sessions, secrets, NOW) == 0, "nothing left to remove"
