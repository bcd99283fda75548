"""A queue message's last failed attempt, audited before the host moves it to ``<queue>-poison`` (health counts
what waits there; the audit says what it was)."""

from __future__ import annotations

from collections.abc import Mapping

import azure.functions as func

MAX_DEQUEUE_COUNT = 5
"""host.json ``extensions.queues.maxDequeueCount``: the attempt after which a failing message is poisoned."""


def last_attempt(msg: func.QueueMessage) -> bool:
    return (msg.dequeue_count or 0) >= MAX_DEQUEUE_COUNT


async def audit_poisoned(
    msg: func.QueueMessage,
    queue: str,
    exc: BaseException,
    correlation_id: str | None,
    *,
    directory_id: str | None = None,
    what: Mapping[str, object] | None = None,
) -> None:
    """On the last attempt only: ``queue.poisoned`` with the queue, the message's id and what it named."""
    if not last_attempt(msg):
        return
    from shared.bootstrap import get_container
    from shared.service.context import Actor

    await get_container().auditor.record(
        Actor("system", correlation_id),
        "queue.poisoned",
        result=f"failed: {type(exc).__name__}",
        directory_id=directory_id,
        after={"queue": queue, "messageId": msg.id, **(what or {})},
    )
