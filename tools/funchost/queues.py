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
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
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


@dataclass
class _Held:
    """A message this listener holds (fetched, invisible to others) and the pop receipt that proves it."""

    message: QueueMessage
    pop_receipt: str
    released: bool = False
    """Made visible again at once because the host stopped while its invocation was still running."""
    renewer: asyncio.Task[None] | None = None


class QueueListener:
    """Polls one queue and invokes its function for each message, as the Storage queue extension does.

    Shutdown never strands a message: one fetched after the stop was asked for is made visible again at once
    (visibility timeout 0) without being run, and one whose invocation is still running when the grace period
    ends is made visible again at once too, instead of staying hidden for the rest of its 10-minute
    processing visibility. (An invocation that finishes after that still deletes its message if nobody has
    fetched it since: the release's pop receipt is then still the current one.)
    """

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
        # The host's own polling (the .NET host's, in Azure, which costs the Python worker nothing) consults no
        # proxy variables or .netrc: with them, aiohttp reads .netrc on a thread for every request, in the process
        # that runs the functions.
        self._client = QueueClient.from_connection_string(
            connection_string, self.queue_name, transport=AioHttpTransport(use_env_settings=False)
        )
        self._poison = QueueClient.from_connection_string(
            connection_string, self.poison_name, transport=AioHttpTransport(use_env_settings=False)
        )
        self._in_flight: dict[asyncio.Task[None], _Held] = {}
        self._unstarted: list[_Held] = []
        self._capacity = asyncio.Event()
        self._stopping = asyncio.Event()
        self._polling = False
        self._polled = asyncio.Event()
        """Set when the polling loop has ended (after releasing whatever its last poll fetched)."""

    async def start(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._client.create_queue()

    async def run(self) -> None:
        self._polling = True
        try:
            await self._poll()
        finally:
            self._polled.set()

    async def _poll(self) -> None:
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
                self.dispatch(messages)
                delay = MIN_POLLING_INTERVAL
                continue
            # Randomized exponential back-off while the queue is empty.
            await self._wait(self._stopping.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(max_delay, delay * 2)
        await self._release_unstarted()

    def dispatch(self, messages: list[QueueMessage]) -> None:
        """Start an invocation per message; while stopping, hold them for release instead."""
        for message in messages:
            held = _Held(message, str(message.pop_receipt))
            if self._stopping.is_set():
                self._unstarted.append(held)
                continue
            task = asyncio.create_task(self._process(held))
            self._in_flight[task] = held
            task.add_done_callback(self._done)

    async def _release_unstarted(self) -> None:
        unstarted, self._unstarted = self._unstarted, []
        for held in unstarted:
            await self._release(held, "it was fetched while the host was stopping")

    async def _wait(self, awaitable: Any, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(awaitable, timeout)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._capacity.set()

    async def _receive(self) -> list[QueueMessage]:
        pager = self._client.receive_messages(
            messages_per_page=self.options.batch_size,
            max_messages=self.options.batch_size,
            visibility_timeout=PROCESSING_VISIBILITY,
        )
        return [m async for m in pager]

    async def _process(self, held: _Held) -> None:
        try:
            await self._process_inner(held)
        except Exception:
            log.exception("Error handling message %s on queue '%s'", held.message.id, self.queue_name)

    async def _process_inner(self, held: _Held) -> None:
        message = held.message
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
        held.renewer = asyncio.create_task(self._keep_hidden(held))
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
            await self._stop_renewing(held)
        if held.released:
            # Visible again since the host stopped; if nobody has fetched it since, the work is done: delete it.
            if result.succeeded:
                with contextlib.suppress(ResourceNotFoundError, HttpResponseError):
                    await self._client.delete_message(message.id, held.pop_receipt)
            return
        if result.succeeded:
            await self._client.delete_message(message.id, held.pop_receipt)
        elif dequeue_count >= opts.max_dequeue_count:
            await self._move_to_poison(message, pop_receipt=held.pop_receipt)
        else:
            await self._client.update_message(
                message.id, held.pop_receipt, visibility_timeout=int(opts.visibility_timeout.total_seconds())
            )

    async def _keep_hidden(self, held: _Held) -> None:
        # Renew the 10-minute visibility at half-life while the function runs.
        while True:
            await asyncio.sleep(PROCESSING_VISIBILITY / 2)
            updated = await self._client.update_message(
                held.message.id, held.pop_receipt, visibility_timeout=PROCESSING_VISIBILITY
            )
            held.pop_receipt = str(updated.pop_receipt)

    async def _stop_renewing(self, held: _Held) -> None:
        renewer, held.renewer = held.renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _release(self, held: _Held, why: str) -> None:
        """Make the message visible again at once (Update Message with a visibility timeout of 0)."""
        await self._stop_renewing(held)
        try:
            updated = await self._client.update_message(
                held.message.id, held.pop_receipt, visibility_timeout=0
            )
        except (ResourceNotFoundError, HttpResponseError) as exc:
            log.warning(
                "Could not release message %s on queue '%s': %s", held.message.id, self.queue_name, exc
            )
            return
        held.pop_receipt = str(updated.pop_receipt)
        held.released = True
        log.warning("Message %s on queue '%s' is visible again: %s.", held.message.id, self.queue_name, why)

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
        """Stop polling; let in-flight invocations finish for up to ``timeout`` seconds, then make the messages
        of those still running visible again at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping.set()
        self._capacity.set()
        if self._polling:
            # The poll under way ends; what it fetched is released, not run.
            await self._wait(self._polled.wait(), max(0.0, deadline - loop.time()))
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=max(0.0, deadline - loop.time()))
        for held in list(self._in_flight.values()):
            await self._release(held, "its invocation was still running when the host's shutdown grace ended")
        await self._release_unstarted()

    async def close(self) -> None:
        await self._client.close()
        await self._poison.close()
