"""Storage queue triggers, processed as the Functions host's queues extension does
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger):

* Polling (#polling-algorithm): while messages arrive the queue is polled again straight away; when
  it is empty the wait grows with a randomized exponential back-off from 100 ms up to
  ``maxPollingInterval``.
* Concurrency (#concurrency): messages are fetched in batches of ``batchSize``; a new batch is fetched
  only when the number in flight drops to ``newBatchThreshold`` or below, so at most
  ``batchSize + newBatchThreshold`` run at once per function.
* A fetched message is hidden for 10 minutes and its visibility is renewed while the function runs.
* Success → the message is deleted. Failure → its visibility is set to ``visibilityTimeout`` so it is
  retried; once its dequeue count reaches ``maxDequeueCount`` it is copied (same raw content, so the
  same encoding) to ``<queue>-poison`` (created if missing) and deleted (#poison-messages). A message
  already dequeued more than ``maxDequeueCount`` times (e.g. after a crash) goes to poison unprocessed.
* ``messageEncoding: base64`` (default): a message that is not valid base64 is moved to the poison
  queue immediately, without invoking the function — retrying cannot help
  (https://github.com/Azure/azure-sdk-for-net/pull/18326).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import logging
import random
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as FuncQueueMessage
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from tools.funchost.invoker import Invoker
from tools.funchost.loader import FunctionSpec
from tools.funchost.settings import QueueOptions

__all__ = ["QueueListener", "decode_message_body"]

log = logging.getLogger("Host.Queues")

MIN_POLLING_INTERVAL = 0.1  # seconds
PROCESSING_VISIBILITY = 600  # seconds: the host hides a message for 10 minutes while it runs


def decode_message_body(raw: str, encoding: str) -> bytes:
    """The function's view of a message: base64-decoded (strictly) or the UTF-8 text as stored."""
    if encoding == "base64":
        return base64.b64decode(raw.encode("ascii"), validate=True)
    return raw.encode("utf-8")


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


class QueueListener:
    def __init__(
        self, spec: FunctionSpec, connection_string: str, options: QueueOptions, invoker: Invoker
    ) -> None:
        assert spec.queue_name is not None
        self.spec = spec
        self.options = options
        self.invoker = invoker
        self.queue_name = spec.queue_name
        self.poison_name = f"{spec.queue_name}-poison"
        # Raw text in and out: decoding is done here so that bad base64 can be handled like the host.
        self._client = QueueClient.from_connection_string(connection_string, self.queue_name)
        self._poison = QueueClient.from_connection_string(connection_string, self.poison_name)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._capacity = asyncio.Event()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._client.create_queue()

    async def run(self) -> None:
        delay = MIN_POLLING_INTERVAL
        max_delay = self.options.max_polling_interval.total_seconds()
        while not self._stopping.is_set():
            # Fetch only when the number in flight is at or below newBatchThreshold.
            while len(self._in_flight) > self.options.new_batch_threshold and not self._stopping.is_set():
                self._capacity.clear()
                await self._wait(self._capacity.wait(), None)
            if self._stopping.is_set():
                break
            try:
                messages = await self._receive()
            except (HttpResponseError, OSError) as exc:
                log.error("Error polling queue '%s': %s", self.queue_name, exc)
                messages = []
            if messages:
                delay = MIN_POLLING_INTERVAL
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._in_flight.add(task)
                    task.add_done_callback(self._done)
                continue
            # Randomized exponential back-off while the queue is empty.
            await self._wait(self._stopping.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(max_delay, delay * 2)

    async def _wait(self, awaitable: Any, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(awaitable, timeout)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._capacity.set()

    async def _receive(self) -> list[QueueMessage]:
        pager = self._client.receive_messages(
            messages_per_page=self.options.batch_size,
            max_messages=self.options.batch_size,
            visibility_timeout=PROCESSING_VISIBILITY,
        )
        return [m async for m in pager]

    async def _process(self, message: QueueMessage) -> None:
        try:
            await self._process_inner(message)
        except Exception:
            log.exception("Error handling message %s on queue '%s'", message.id, self.queue_name)

    async def _process_inner(self, message: QueueMessage) -> None:
        opts = self.options
        dequeue_count = int(message.dequeue_count or 0)
        if dequeue_count > opts.max_dequeue_count:
            await self._move_to_poison(message)
            return
        raw = message.content if isinstance(message.content, str) else str(message.content or "")
        try:
            body = decode_message_body(raw, opts.message_encoding)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            log.warning(
                "Message %s on queue '%s' is not valid base64 (host.json messageEncoding is base64): "
                "moving it to '%s' without invoking the function.",
                message.id,
                self.queue_name,
                self.poison_name,
            )
            await self._move_to_poison(message, log_reached=False)
            return
        # The host hands a queue trigger to the worker as a string (WorkerFunctionInvoker:
        # ``_bindingMetadata.DataType ?? DataType.String``; the message body is decoded as UTF-8), so
        # bytes that are not UTF-8 reach the function with U+FFFD replacements, re-encoded by
        # QueueMessage.get_body().
        text = body.decode("utf-8", errors="replace")
        state = {"pop_receipt": message.pop_receipt}
        renewer = asyncio.create_task(self._keep_hidden(message, state))
        try:
            trigger: Any = FuncQueueMessage(  # type: ignore[no-untyped-call]
                id=message.id,
                body=text.encode("utf-8"),
                dequeue_count=dequeue_count,
                expiration_time=_aware(message.expires_on),
                insertion_time=_aware(message.inserted_on),
                time_next_visible=_aware(message.next_visible_on),
                pop_receipt=message.pop_receipt,
            )
            if self.spec.trigger_as_text:
                trigger = text  # a `str`/`bytes` annotation: the worker's generic binding passes the string
            result = await self.invoker.invoke(
                self.spec, trigger, f"New queue message detected on '{self.queue_name}'."
            )
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        pop_receipt = state["pop_receipt"]
        if result.succeeded:
            await self._client.delete_message(message.id, pop_receipt)
        elif dequeue_count >= opts.max_dequeue_count:
            await self._move_to_poison(message, pop_receipt=pop_receipt)
        else:
            await self._client.update_message(
                message.id, pop_receipt, visibility_timeout=int(opts.visibility_timeout.total_seconds())
            )

    async def _keep_hidden(self, message: QueueMessage, state: dict[str, Any]) -> None:
        # Renew the 10-minute visibility at half-life while the function runs.
        while True:
            await asyncio.sleep(PROCESSING_VISIBILITY / 2)
            updated = await self._client.update_message(
                message.id, state["pop_receipt"], visibility_timeout=PROCESSING_VISIBILITY
            )
            state["pop_receipt"] = updated.pop_receipt

    async def _move_to_poison(
        self, message: QueueMessage, *, pop_receipt: str | None = None, log_reached: bool = True
    ) -> None:
        if log_reached:
            log.warning(
                "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
                self.options.max_dequeue_count,
                self.poison_name,
            )
        with contextlib.suppress(ResourceExistsError):
            await self._poison.create_queue()
        await self._poison.send_message(message.content)
        with contextlib.suppress(ResourceNotFoundError):
            await self._client.delete_message(message.id, pop_receipt or message.pop_receipt)

    async def stop(self, timeout: float) -> None:
        """Stop polling; let in-flight messages finish for up to ``timeout`` seconds."""
        self._stopping.set()
        self._capacity.set()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout)

    async def close(self) -> None:
        await self._client.close()
        await self._poison.close()
