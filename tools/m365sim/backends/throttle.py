"""Microsoft Graph's identity-and-access throttling: resource units (RU) and write quotas.

Source: https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits

- application+tenant pair: S 3,500 / M 5,000 / L 8,000 RU per 10 s (S < 50 users, M 50-500, L > 500);
  3,000 writes per 2 min 30 s.
- tenant (all apps): 18,000 writes per 5 min.
- Base cost: GET users 2, GET groups/{id}/members 3, GET groups/{id}/transitiveMembers 5,
  POST directoryObjects/getByIds 3 (write cost 0), ..., any other GET 1; POST/PATCH/PUT/DELETE 1 RU + 1 write.
- "Using $select decreases cost by 1", "Using $expand increases cost by 1", "Using $top with a value of less
  than 20 decreases cost by 1"; "A request cost can never be lower than 1". Costs of ``me/`` paths also apply to
  ``users/{id | userPrincipalName}/``.
- Responses carry ``x-ms-resource-unit``; ``x-ms-throttle-limit-percentage`` only when more than 0.8 of the limit
  is used (0.8 to 1.8); throttled responses carry ``x-ms-throttle-scope`` (``<Scope>/<Limit>/<AppId>/<TenantId>``)
  and ``x-ms-throttle-information`` (``ResourceUnitLimitExceeded``, ``WriteLimitExceeded``).
- "Only the requests exceeding the limits will be throttled": a rejected request consumes nothing here.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tools.m365sim.backends.errors import graph_error_body

RU_WINDOW_S = 10.0
APP_WRITE_WINDOW_S = 150.0
APP_WRITE_LIMIT = 3_000
TENANT_WRITE_WINDOW_S = 300.0
TENANT_WRITE_LIMIT = 18_000

_ID = r"[^/]+"
# (method, path regex below /v1.0 without leading slash, base RU cost, write cost)
# https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits (base request costs)
_COSTS: list[tuple[str, re.Pattern[str], int, int]] = [
    (m, re.compile(p + r"$", re.IGNORECASE), ru, w)
    for m, p, ru, w in [
        ("GET", r"applications", 2, 0),
        ("GET", rf"applications/{_ID}/extensionProperties", 2, 0),
        ("GET", r"contracts", 3, 0),
        ("POST", r"directoryObjects/getByIds", 3, 0),
        ("GET", rf"domains/{_ID}/domainNameReferences", 4, 0),
        ("POST", r"getObjectsById", 3, 0),
        ("GET", rf"groups/{_ID}/members(/.*)?", 3, 0),
        ("GET", rf"groups/{_ID}/transitiveMembers(/.*)?", 5, 0),
        ("POST", r"isMemberOf", 4, 0),
        ("POST", rf"(me|users/{_ID})/checkMemberGroups", 4, 0),
        ("POST", rf"(me|users/{_ID})/checkMemberObjects", 4, 0),
        ("POST", rf"(me|users/{_ID})/getMemberGroups", 2, 0),
        ("POST", rf"(me|users/{_ID})/getMemberObjects", 2, 0),
        ("GET", rf"(me|users/{_ID})/licenseDetails", 2, 0),
        ("GET", rf"(me|users/{_ID})/memberOf(/.*)?", 2, 0),
        ("GET", rf"(me|users/{_ID})/ownedObjects(/.*)?", 2, 0),
        ("GET", rf"(me|users/{_ID})/transitiveMemberOf(/.*)?", 2, 0),
        ("GET", r"oauth2PermissionGrants", 2, 0),
        ("GET", rf"oauth2PermissionGrants/{_ID}", 2, 0),
        ("GET", rf"servicePrincipals/{_ID}/appRoleAssignments", 2, 0),
        ("GET", r"subscribedSkus", 3, 0),
        ("GET", r"users", 2, 0),
    ]
]


def request_cost(method: str, path: str, query: Mapping[str, str]) -> tuple[int, int]:
    """(resource units, writes) of one Graph request; ``path`` is below the version segment."""
    method = method.upper()
    p = path.strip("/")
    base, writes = (1, 0) if method == "GET" else (1, 1)
    for m, rx, ru, w in _COSTS:
        if m == method and rx.match(p):
            base, writes = ru, w
            break
    keys = {k.lower(): v for k, v in query.items()}
    cost = base
    if "$select" in keys:
        cost -= 1
    if "$expand" in keys:
        cost += 1
    top = keys.get("$top")
    if top is not None and top.strip().isdigit() and int(top) < 20:
        cost -= 1
    return max(cost, 1), writes


def tenant_ru_budget(user_count: int) -> int:
    """S: under 50 users, M: 50 to 500, L: above 500."""
    if user_count < 50:
        return 3_500
    if user_count <= 500:
        return 5_000
    return 8_000


@dataclass
class Decision:
    allowed: bool
    cost: int
    headers: dict[str, str]
    retry_after: float = 0.0
    information: str = ""


class _Window:
    """Sliding window of (time, amount) events."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0
        """The sum of the events' amounts (kept as they come and go: a window of thousands of writes is asked
        on every request)."""

    def used(self, now: float) -> int:
        while self.events and self.events[0][0] <= now - self.span:
            self.total -= self.events.popleft()[1]
        return self.total

    def wait_for(self, now: float, need: int, limit: int) -> float:
        """Seconds until ``need`` more fits under ``limit`` (events expire one by one)."""
        used = self.used(now)
        for t, a in self.events:
            used -= a
            if used + need <= limit:
                return max(t + self.span - now, 0.001)
        return self.span

    def add(self, now: float, amount: int) -> None:
        if amount:
            self.events.append((now, amount))
            self.total += amount


class Throttler:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._ru: dict[tuple[str, str], _Window] = {}
        self._app_writes: dict[tuple[str, str], _Window] = {}
        self._tenant_writes: dict[str, _Window] = {}

    def reset(self) -> None:
        self._ru.clear()
        self._app_writes.clear()
        self._tenant_writes.clear()

    def charge(
        self, tenant_id: str, app_id: str, method: str, path: str, query: Mapping[str, str], budget: int
    ) -> Decision:
        now = self._clock()
        cost, writes = request_cost(method, path, query)
        key = (tenant_id, app_id)
        ru = self._ru.setdefault(key, _Window(RU_WINDOW_S))
        aw = self._app_writes.setdefault(key, _Window(APP_WRITE_WINDOW_S))
        tw = self._tenant_writes.setdefault(tenant_id, _Window(TENANT_WRITE_WINDOW_S))
        used = ru.used(now)
        # A single request dearer than the whole budget still passes on an idle window.
        if used and used + cost > budget:
            wait = ru.wait_for(now, cost, budget)
            return self._throttled(
                cost, wait, "ResourceUnitLimitExceeded", f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}"
            )
        if writes:
            for window, limit, scope in (
                (aw, APP_WRITE_LIMIT, f"Tenant_Application/Write/{app_id}/{tenant_id}"),
                (tw, TENANT_WRITE_LIMIT, f"Tenant/Write/{app_id}/{tenant_id}"),
            ):
                if window.used(now) + writes > limit:
                    return self._throttled(
                        cost, window.wait_for(now, writes, limit), "WriteLimitExceeded", scope
                    )
        ru.add(now, cost)
        aw.add(now, writes)
        tw.add(now, writes)
        headers = {"x-ms-resource-unit": str(cost)}
        ratio = (used + cost) / budget if budget else 0.0
        if ratio > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{min(ratio, 1.8):.2f}"
        return Decision(True, cost, headers)

    @staticmethod
    def _throttled(cost: int, wait: float, info: str, scope: str) -> Decision:
        retry = f"{wait:.3f}".rstrip("0").rstrip(".") or "0.001"
        headers = {
            "Retry-After": retry,
            "x-ms-throttle-scope": scope,
            "x-ms-throttle-information": info,
            "x-ms-resource-unit": str(cost),
        }
        return Decision(False, cost, headers, retry_after=wait, information=info)


def too_many_requests_body(now: float) -> dict[str, Any]:
    """The sample body of https://learn.microsoft.com/en-us/graph/throttling#sample-response ."""
    body = graph_error_body("TooManyRequests", "Please retry again later.", now)
    inner = body["error"]["innerError"]
    inner.update({"code": "429", "message": "Please retry after", "status": "429"})
    return body
