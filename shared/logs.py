"""Structured logs: one JSON object per event, carrying the correlation id of the work it belongs to.

The Functions host ships each log record's message to Application Insights; putting the JSON in the message
keeps the structure intact under any host (Azure, Core Tools, ``tools.funchost``). The correlation id is set
once where work enters Warden (an HTTP request, a queue message, a timer) and read wherever it goes next.
Fields are given explicitly by the caller: nothing is dumped wholesale, so no secret rides along by accident.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shared import heap

_correlation: ContextVar[str | None] = ContextVar("warden_correlation_id", default=None)


def correlation_id() -> str | None:
    return _correlation.get()


@contextmanager
def correlated(existing: str | None = None) -> Iterator[str]:
    """Run a unit of work under ``existing`` (e.g. a caller's ``x-correlation-id``) or a new id. Every
    invocation runs in one, so its end is also where the heap is settled after the imports the work needed
    (``shared.heap``)."""
    if existing and _is_safe_id(existing):
        value = existing
    else:
        import uuid  # here: uuid loads platform, which every cold start's indexing would pay for nothing

        value = str(uuid.uuid4())
    token = _correlation.set(value)
    try:
        yield value
    finally:
        _correlation.reset(token)
        heap.settle()


def _is_safe_id(value: str) -> bool:
    """Caller-supplied ids end up in logs: accept only short, plain ones."""
    return 0 < len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value)


def event_json(event: str, fields: Mapping[str, Any]) -> str:
    body: dict[str, Any] = {"event": event, "correlationId": correlation_id()}
    body.update(fields)
    return json.dumps(body, default=str, separators=(",", ":"))


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event_json(event, fields))
