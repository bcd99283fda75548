"""Graph's ``$batch``: requests of at most 20 calls, inner throttling retried, every answer matched by id.

https://learn.microsoft.com/en-us/graph/json-batching: the outer request passes the directory's throttle gate and
retry middleware; inner answers are per request (any order, matched by id), and an inner 429/503/504 is retried
here after its Retry-After (fractional allowed), pausing the directory's gate so no other call of the directory
goes out meanwhile. A failed dependency answers 424 for its dependants.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.adapters.graph import send_json
from shared.adapters.graph_throttle import ThrottleGate, parse_retry_after

BATCH_LIMIT = 20
RETRYABLE = frozenset({429, 503, 504})
MAX_INNER_ATTEMPTS = 8
FALLBACK_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class BatchCall:
    """One Graph request of a ``$batch`` (url relative to the version root: "/users/{id}")."""

    id: str
    method: str
    url: str
    body: Any = None
    depends_on: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """One inner answer of a ``$batch``: its status, Graph's error body (https://learn.microsoft.com/en-us/graph/errors:
    ``{"error": {"code", "message", "details"?, "innerError"}}``) or the created object, and its headers."""

    id: str
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict[str, Any]:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error if isinstance(error, dict) else {}

    @property
    def error_code(self) -> str | None:
        code = self.error.get("code")
        return str(code) if code else None

    @property
    def error_message(self) -> str:
        return str(self.error.get("message") or "")

    @property
    def detail_codes(self) -> list[tuple[str, str]]:
        """``(code, target)`` of each entry of the error's ``details`` (e.g. ``ObjectConflict`` on a property)."""
        details = self.error.get("details")
        if not isinstance(details, list):
            return []
        return [
            (str(d.get("code") or ""), str(d.get("target") or "")) for d in details if isinstance(d, dict)
        ]


Send = Callable[[Sequence[BatchCall]], Awaitable[dict[str, BatchResult]]]
"""Runs calls (of one directory) in ``$batch`` requests; every call's answer by id."""


def chunks(calls: Sequence[BatchCall]) -> list[list[BatchCall]]:
    """Groups of ≤ 20 calls that never split a call from the one it depends on."""
    groups: list[list[BatchCall]] = []
    current: list[BatchCall] = []
    units: list[list[BatchCall]] = []
    for c in calls:
        if c.depends_on and units and any(x.id == c.depends_on for x in units[-1]):
            units[-1].append(c)
        else:
            units.append([c])
    for unit in units:
        if len(current) + len(unit) > BATCH_LIMIT:
            groups.append(current)
            current = []
        current.extend(unit)
    if current:
        groups.append(current)
    return groups


async def run_batches(client: Any, gate: ThrottleGate, calls: Sequence[BatchCall]) -> dict[str, BatchResult]:
    """Send ``calls`` in ``$batch`` requests of at most 20 (a call and its ``depends_on`` travel together: the
    caller keeps an object's calls adjacent and ≤ 20), retrying inner 429/503/504."""
    results: dict[str, BatchResult] = {}
    for chunk in chunks(calls):
        results.update(await _run_chunk(client, gate, chunk))
    return results


async def _run_chunk(client: Any, gate: ThrottleGate, chunk: list[BatchCall]) -> dict[str, BatchResult]:
    pending = {c.id: c for c in chunk}
    done: dict[str, BatchResult] = {}
    usage = gate.usage
    for attempt in range(MAX_INNER_ATTEMPTS):
        writes = sum(1 for c in pending.values() if c.method != "GET")
        await usage.ru.take(len(pending))
        await usage.write.take(writes)
        requests = []
        for c in pending.values():
            request: dict[str, Any] = {"id": c.id, "method": c.method, "url": c.url}
            if c.body is not None:
                request["body"] = c.body
                request["headers"] = {"Content-Type": "application/json"}
            if c.depends_on and c.depends_on in pending:
                request["dependsOn"] = [c.depends_on]
            requests.append(request)
        started = time.monotonic()
        answer = await send_json(client, "POST", "/$batch", body={"requests": requests})
        waits: list[float] = []
        retry: set[str] = set()
        for r in (answer or {}).get("responses", []):
            rid, status = str(r.get("id")), int(r.get("status", 0))
            headers = {str(k).lower(): str(v) for k, v in (r.get("headers") or {}).items()}
            result = BatchResult(rid, status, r.get("body"), headers)
            with contextlib.suppress(ValueError):
                usage.resource_units += int(headers.get("x-ms-resource-unit") or 0)
            if status == 429:
                usage.throttled += 1
            elif 200 <= status < 300 and pending[rid].method != "GET":
                usage.writes += 1
            if status in RETRYABLE and attempt + 1 < MAX_INNER_ATTEMPTS:
                retry.add(rid)
                delay = parse_retry_after(headers.get("retry-after"))
                waits.append(delay if delay is not None else FALLBACK_BACKOFF_SECONDS * 2**attempt)
            else:
                done[rid] = result
        # A dependant that failed only because its dependency is being retried goes again with it.
        for rid, result in list(done.items()):
            call = pending.get(rid)
            if result.status == 424 and call is not None and call.depends_on in retry:
                retry.add(rid)
                del done[rid]
        pending = {rid: c for rid, c in pending.items() if rid in retry}
        if not pending:
            break
        pause = max(waits, default=FALLBACK_BACKOFF_SECONDS)
        gate.pause(max(0.0, pause - (time.monotonic() - started)))
        await gate.wait()
    for rid in pending:  # attempts exhausted: report the last throttled answer as it was
        done.setdefault(
            rid,
            BatchResult(
                rid, 503, {"error": {"code": "serviceUnavailable", "message": "retries exhausted"}}, {}
            ),
        )
    return done
