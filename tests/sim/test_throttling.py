"""Graph's identity-and-access throttling in the simulator.

https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits and
https://learn.microsoft.com/en-us/graph/throttling#sample-response
"""

from __future__ import annotations

import time

import pytest

from tests.sim.conftest import OTHER_CLIENT_ID, OTHER_SECRET, SimTenant
from tools.m365sim.backends.throttle import Throttler, request_cost, tenant_ru_budget


@pytest.mark.parametrize(
    "method, path, query, expected",
    [
        ("GET", "/users", {}, (2, 0)),
        ("GET", "/users", {"$select": "id"}, (1, 0)),
        ("GET", "/users", {"$top": "19"}, (1, 0)),
        ("GET", "/users", {"$top": "20"}, (2, 0)),
        ("GET", "/users", {"$top": "5", "$select": "id"}, (1, 0)),  # never below 1
        ("GET", "/users/abc", {}, (1, 0)),
        ("GET", "/users/abc", {"$expand": "manager"}, (2, 0)),
        ("GET", "/groups/g1/members", {}, (3, 0)),
        ("GET", "/groups/g1/transitiveMembers", {}, (5, 0)),
        ("POST", "/directoryObjects/getByIds", {}, (3, 0)),
        ("GET", "/users/u1/memberOf", {}, (2, 0)),  # me/ costs apply to users/{id}/
        ("POST", "/users", {}, (1, 1)),
        ("PATCH", "/users/u1", {}, (1, 1)),
        ("DELETE", "/groups/g1/members/u1/$ref", {}, (1, 1)),
    ],
)
def test_request_costs_follow_the_table(
    method: str, path: str, query: dict[str, str], expected: tuple[int, int]
) -> None:
    """throttling-limits: base costs, "$select decreases cost by 1", "$expand increases cost by 1", "$top with a
    value of less than 20 decreases cost by 1", "A request cost can never be lower than 1"."""
    assert request_cost(method, path, query) == expected


def test_budget_by_tenant_size() -> None:
    """throttling-limits: S (under 50 users) 3,500, M (50-500) 5,000, L (above 500) 8,000 RU per 10 s."""
    assert [tenant_ru_budget(n) for n in (0, 49, 50, 500, 501)] == [3500, 3500, 5000, 5000, 8000]


def test_write_quota_per_app_and_tenant() -> None:
    """throttling-limits: 3,000 writes per 2 min 30 s per app+tenant; 18,000 per 5 min per tenant."""
    now = [1000.0]
    t = Throttler(lambda: now[0])
    for _ in range(3000):
        assert t.charge("t", "app", "POST", "/users", {}, 10**9).allowed
        now[0] += 0.01
    refused = t.charge("t", "app", "POST", "/users", {}, 10**9)
    assert not refused.allowed and refused.information == "WriteLimitExceeded"
    assert refused.headers["x-ms-throttle-scope"] == "Tenant_Application/Write/app/t"
    assert t.charge("t", "app", "GET", "/users/x", {}, 10**9).allowed  # reads still pass
    now[0] += 150
    assert t.charge("t", "app", "POST", "/users", {}, 10**9).allowed


def test_429_when_the_budget_is_spent(tenant: SimTenant) -> None:
    """throttling-limits + throttling#sample-response: over budget → 429 TooManyRequests with a (possibly
    fractional) Retry-After, x-ms-throttle-scope and x-ms-throttle-information; x-ms-throttle-limit-percentage
    once more than 0.8 of the limit is used; a rejected request consumes nothing."""
    tenant.faults(resourceUnitsPer10s=10)
    token = tenant.token()
    seen = []
    for _ in range(5):  # GET /users costs 2: 2,4,6,8,10
        r = tenant.graph("GET", "/users", token=token)
        assert r.status_code == 200
        seen.append(r.headers.get("x-ms-throttle-limit-percentage"))
    assert seen[:4] == [None, None, None, None] and seen[4] == "1.00"
    throttled = tenant.graph("GET", "/users", token=token)
    assert throttled.status_code == 429
    err = throttled.json()["error"]
    assert err["code"] == "TooManyRequests" and err["innerError"]["status"] == "429"
    retry_after = float(throttled.headers["Retry-After"])
    assert 0 < retry_after <= 10
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    scope = throttled.headers["x-ms-throttle-scope"]
    assert scope.startswith("Tenant_Application/ReadWrite/") and scope.endswith(tenant.tenant_id)
    log = tenant.requests()
    assert log[-1]["status"] == 429 and log[-1]["resourceUnits"] == 0
    # Retry-After is honest: just before it the budget is still spent, just after it a request passes.
    if retry_after > 0.3:
        tenant.clock(retry_after - 0.25)
        assert tenant.graph("GET", "/users", token=token).status_code == 429
    tenant.clock(retry_after + 0.05)
    assert tenant.graph("GET", "/users", token=token).status_code == 200


def test_budget_is_per_app(tenant: SimTenant) -> None:
    """throttling-limits: the RU quota is per application+tenant pair."""
    tenant.faults(resourceUnitsPer10s=2)
    token = tenant.token()
    assert tenant.graph("GET", "/users", token=token).status_code == 200
    assert tenant.graph("GET", "/users", token=token).status_code == 429
    other = tenant.token(client_id=OTHER_CLIENT_ID, secret=OTHER_SECRET)
    assert tenant.graph("GET", "/users", token=other).status_code == 200


def test_sliding_window_in_real_time(tenant: SimTenant) -> None:
    """The window slides on the simulator's clock: 9 s forward by the control API, the last second in real time
    (bounded: < 2 s)."""
    tenant.faults(resourceUnitsPer10s=1)
    token = tenant.token()
    assert tenant.graph("GET", "/users/x?$select=id", token=token).status_code in (200, 404)
    r = tenant.graph("GET", "/users?$select=id", token=token)
    assert r.status_code == 429
    started = time.monotonic()
    tenant.clock(9.0)
    while time.monotonic() - started < 2.0:
        if tenant.graph("GET", "/users?$select=id", token=token).status_code == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the RU window never slid")
