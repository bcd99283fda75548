"""The queue listener never strands a message when the host stops: a message fetched while the host is stopping
is made visible again at once without being run, and one whose invocation outlasts the shutdown grace is made
visible again at once (Update Message, visibility timeout 0) instead of staying hidden for the rest of its
10-minute processing visibility. Run in-process against Azurite, with an invoker the test controls."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.storage.queue.aio import QueueClient

from tools.funchost.invoker import InvocationResult
from tools.funchost.loader import FunctionSpec
from tools.funchost.queues import QueueListener
from tools.funchost.settings import QueueOptions

pytestmark = pytest.mark.integration


class HeldInvoker:
    """Records each invocation and keeps it running until ``finish`` is set."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finish = asyncio.Event()
        self.running = asyncio.Event()

    async def invoke(self, spec: FunctionSpec, trigger: Any, reason: str) -> InvocationResult:
        self.started.append(trigger.get_body().decode())
        self.running.set()
        await self.finish.wait()
        return InvocationResult(str(uuid.uuid4()))


def spec_for(queue: str) -> FunctionSpec:
    return FunctionSpec(
        name="work",
        kind="queue",
        trigger_param="msg",
        func=lambda msg: None,
        is_async=True,
        wants_context=False,
        queue_name=queue,
        connection_setting="AzureWebJobsStorage",
    )


@pytest.fixture
async def queue(azurite: Any) -> AsyncIterator[QueueClient]:
    client = QueueClient.from_connection_string(
        azurite.connection_string, f"shutdown-{uuid.uuid4().hex[:12]}"
    )
    await client.create_queue()
    try:
        yield client
    finally:
        await client.delete_queue()
        await client.close()


async def visible(queue: QueueClient) -> list[Any]:
    """The messages another consumer could fetch now (peek shows only visible ones)."""
    return list(await queue.peek_messages(max_messages=32))


async def send(queue: QueueClient, body: str) -> None:
    await queue.send_message(base64.b64encode(body.encode()).decode())


async def test_a_message_whose_invocation_outlasts_the_grace_is_visible_again_at_once(
    azurite: Any, queue: QueueClient
) -> None:
    invoker = HeldInvoker()
    listener = QueueListener(spec_for(queue.queue_name), azurite.connection_string, QueueOptions(), invoker)  # type: ignore[arg-type]
    await send(queue, "slow")
    polling = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(invoker.running.wait(), 10)
        assert await visible(queue) == [], "hidden while its invocation runs"
        await listener.stop(timeout=0.2)
        (message,) = await visible(queue)
        assert message.dequeue_count == 1, "visible again at once, not in ten minutes"
        # The invocation ends after all; nobody fetched the message since, so its work is done and it goes.
        invoker.finish.set()
        for _ in range(100):
            if (
                not await visible(queue)
                and (await queue.get_queue_properties()).approximate_message_count == 0
            ):
                break
            await asyncio.sleep(0.05)
        assert (await queue.get_queue_properties()).approximate_message_count == 0
        assert invoker.started == ["slow"]
    finally:
        invoker.finish.set()
        await asyncio.wait_for(polling, 10)
        await listener.close()


class StopDuringPoll(QueueListener):
    """A stop that arrives while a poll is under way: the poll returns messages the host must not run."""

    stopping: asyncio.Task[None] | None = None

    async def _receive(self) -> list[Any]:
        messages = await super()._receive()
        self.stopping = asyncio.ensure_future(self.stop(timeout=5))
        await asyncio.sleep(0)  # the stop is asked for before the fetched messages are handed out
        return messages


async def test_messages_fetched_while_the_host_stops_are_released_without_running(
    azurite: Any, queue: QueueClient
) -> None:
    invoker = HeldInvoker()
    listener = StopDuringPoll(spec_for(queue.queue_name), azurite.connection_string, QueueOptions(), invoker)  # type: ignore[arg-type]
    for n in range(3):
        await send(queue, f"m{n}")
    try:
        await asyncio.wait_for(listener.run(), 10)
        assert listener.stopping is not None
        await asyncio.wait_for(listener.stopping, 10)
        released = await visible(queue)
        assert sorted(base64.b64decode(m.content).decode() for m in released) == ["m0", "m1", "m2"]
        assert all(m.dequeue_count == 1 for m in released), "fetched once, and visible again at once"
        assert invoker.started == [], "nothing runs once the host is stopping"
    finally:
        await listener.close()
