"""The token refresh timer's session sweep keeps its hour and never decides the round's fate: a failed sweep is
logged and the round's outcome stands (a round that succeeded does not fail; a round that failed fails with its
own error, not the sweep's)."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from functions import timers


class SweepDown(Exception):
    pass


class RoundDown(Exception):
    pass


def _app(round_result: Any) -> Any:
    async def round(actor: Any) -> Any:
        if isinstance(round_result, Exception):
            raise round_result
        return round_result

    return SimpleNamespace(
        token_refresh=SimpleNamespace(round=round),
        stores=SimpleNamespace(sessions=object()),
        secret_store=object(),
        real_clock=lambda: dt.datetime.now(dt.UTC),
    )


async def _failing_sweep(*args: Any) -> int:
    raise SweepDown("storage unreachable")


def _timer() -> TimerRequest:
    return TimerRequest(past_due=False)


@pytest.fixture
def sweep_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.adapters.tables.sessions.sweep", _failing_sweep)


async def test_a_failed_sweep_is_logged_and_the_round_still_succeeds(
    sweep_fails: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    done = SimpleNamespace(results=[], run=SimpleNamespace(id="run-1", counts={"directories": 0}))
    monkeypatch.setattr("shared.bootstrap.get_container", lambda: _app(done))
    with caplog.at_level(logging.INFO, logger="warden"):
        await timers.token_refresh(_timer())
    messages = [r.getMessage() for r in caplog.records]
    assert any('"console.sweep_failed"' in m and "SweepDown" in m for m in messages)
    assert any('"token_refresh.round"' in m for m in messages)


async def test_a_failed_round_fails_with_its_own_error_not_the_sweeps(
    sweep_fails: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.bootstrap.get_container", lambda: _app(RoundDown("entra unreachable")))
    with pytest.raises(RoundDown):
        await timers.token_refresh(_timer())
