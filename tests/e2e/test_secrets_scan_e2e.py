"""After the whole suite: no secret handed to Warden is in any table row, queue message or log line it wrote.

Runs last (``@pytest.mark.last``). The secrets are every client secret the suite used (the demo world's and
each test tenant's, wrong ones included), registered with ``tests.conftest.remember_secret``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import SECRETS, Azurite
from tests.e2e.conftest import WardenHost

pytestmark = pytest.mark.last


async def _storage_text(connection_string: str) -> tuple[int, int, str]:
    from azure.data.tables.aio import TableServiceClient
    from azure.storage.queue.aio import QueueServiceClient

    chunks: list[str] = []
    rows = messages = 0
    async with TableServiceClient.from_connection_string(connection_string) as tables:
        async for table in tables.list_tables():
            async with tables.get_table_client(table.name) as client:
                async for entity in client.list_entities():
                    rows += 1
                    chunks.append(repr(dict(entity)))
    async with QueueServiceClient.from_connection_string(connection_string) as queues:
        async for queue in queues.list_queues():
            async with queues.get_queue_client(queue.name) as client:
                for message in await client.peek_messages(max_messages=32):
                    messages += 1
                    chunks.append(str(message.content))
    return rows, messages, "\n".join(chunks)


def test_no_secret_is_in_any_table_row_queue_message_or_log_line(
    warden: WardenHost, azurite: Azurite
) -> None:
    assert len(SECRETS) >= 5, "the suite registered the secrets it used"
    rows, _, stored = asyncio.run(_storage_text(azurite.connection_string))
    assert rows > 50, "the suite left rows to scan"
    log = warden.log.read_text(errors="replace")
    assert "Executing 'Functions." in log, "the host's log was captured"
    sim_requests: list[dict[str, Any]] = warden.stack.sim.requests()
    leaks = {
        where: [s[:4] + "…" for s in SECRETS if s in text]
        for where, text in (
            ("tables/queues", stored),
            ("host log", log),
            ("sim request log", repr(sim_requests)),
        )
    }
    assert leaks == {"tables/queues": [], "host log": [], "sim request log": []}
