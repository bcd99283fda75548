"""The request log the control API serves (``GET /_sim/requests``): method, path, status, resource units,
tenant, client and kind of each request, in a bounded ring buffer. Never a body, a secret or a token."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from typing import Any

from tools.m365sim.backends.clock import Clock

REQUEST_LOG_SIZE = 20_000


class RequestLog:
    def __init__(self, clock: Clock, size: int = REQUEST_LOG_SIZE) -> None:
        self._clock = clock
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = itertools.count(1)

    def add(
        self,
        *,
        method: str,
        path: str,
        status: int,
        resource_units: int,
        tenant_id: str | None,
        client_id: str | None,
        kind: str,
    ) -> dict[str, Any]:
        entry = {
            "seq": next(self._seq),
            "time": dt.datetime.fromtimestamp(self._clock(), dt.UTC).isoformat().replace("+00:00", "Z"),
            "method": method,
            "path": path,
            "status": status,
            "resourceUnits": resource_units,
            "tenantId": tenant_id,
            "clientId": client_id,
            "kind": kind,
        }
        self._entries.append(entry)
        return entry

    def since(self, seq: int = 0) -> list[dict[str, Any]]:
        return [e for e in self._entries if e["seq"] > seq]

    def clear(self) -> None:
        self._entries.clear()
