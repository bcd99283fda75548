"""The reconcile reads the store's index and Graph side by side (``shared.service.reconcile.both``)."""

from __future__ import annotations

import asyncio

import pytest

from shared.service.runs.reconcile import both


async def _after(seconds: float, value: str, log: list[str]) -> str:
    await asyncio.sleep(seconds)
    log.append(value)
    return value


def test_both_reads_run_at_once_and_keep_their_order() -> None:
    log: list[str] = []

    async def run() -> tuple[str, str]:
        return await both(_after(0.05, "index", log), _after(0.01, "tenant", log))

    assert asyncio.run(run()) == ("index", "tenant")
    assert log == ["tenant", "index"]  # the second finished first: they overlapped


def test_a_failed_read_cancels_the_other_and_raises_its_own_error() -> None:
    log: list[str] = []
    cancelled: list[bool] = []

    async def slow() -> str:
        try:
            return await _after(5, "index", log)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def broken() -> str:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("Graph hung up")

    async def run() -> tuple[str, str]:
        return await both(slow(), broken())

    with pytest.raises(ConnectionResetError, match="Graph hung up"):
        asyncio.run(run())
    assert cancelled == [True] and log == []
