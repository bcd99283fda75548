"""JSON batching in the simulator: https://learn.microsoft.com/en-us/graph/json-batching

Raw httpx here because the malformed batches are ones the SDK would refuse to build; the SDK path is in
test_msgraph_sdk.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sim.conftest import DOMAIN, SimTenant


def batch(tenant: SimTenant, payload: Any, token: str | None = None) -> httpx.Response:
    return tenant.graph("POST", "/$batch", token=token, json=payload)


def gets(n: int, url: str = "/users?$top=1&$select=id") -> list[dict[str, Any]]:
    return [{"id": str(i), "method": "GET", "url": url} for i in range(1, n + 1)]


def test_batch_answers_each_request_by_id_in_any_order(tenant: SimTenant) -> None:
    """json-batching: "Individual responses might appear in a different order than the requests. The id
    property can be used to correlate"; each response has status, headers and body; urls may omit the slash."""
    requests = gets(20)
    requests[5]["url"] = "users?$top=2&$select=id"  # no leading slash
    resp = batch(tenant, {"requests": requests})
    assert resp.status_code == 200, resp.text
    responses = resp.json()["responses"]
    assert sorted(r["id"] for r in responses) == sorted(r["id"] for r in requests)
    assert [r["id"] for r in responses] != [r["id"] for r in requests]  # 1 in 20! to fail by chance
    by_id = {r["id"]: r for r in responses}
    assert all(r["status"] == 200 for r in responses)
    assert len(by_id["6"]["body"]["value"]) == 2
    assert by_id["1"]["headers"]["x-ms-resource-unit"] == "1"
    kinds = [e["kind"] for e in tenant.requests()]
    assert kinds.count("batch-item") == 20 and kinds.count("batch") == 1


@pytest.mark.parametrize(
    "payload, needle",
    [
        ({"requests": gets(21)}, "20"),
        (
            {
                "requests": [
                    {"id": "a", "method": "GET", "url": "/users"},
                    {"id": "A", "method": "GET", "url": "/users"},
                ]
            },
            "duplicate",
        ),
        ({"requests": [{"method": "GET", "url": "/users"}]}, "id"),
        ({"requests": [{"id": 1, "method": "GET", "url": "/users"}]}, "string id"),
        (
            {
                "requests": [
                    {"id": "1", "method": "GET", "url": "/users"},
                    {"id": "2", "method": "GET", "url": "/users", "dependsOn": [1]},
                ]
            },
            "dependsOn",
        ),
        ({"requests": [{"id": "1", "url": "/users"}]}, "method"),
        ({"requests": [{"id": "1", "method": "GET"}]}, "url"),
        ({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": {"a": 1}}]}, "Content-Type"),
        ({"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]}, "9"),
        (
            {"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}]},
            "relative",
        ),
        ({"value": []}, "Invalid batch payload"),
    ],
)
def test_malformed_batches_are_400(tenant: SimTenant, payload: Any, needle: str) -> None:
    """json-batching: "If the batch request itself is malformed, the status code is 400"; ids are required strings
    and unique ("Not case-sensitive"), dependsOn "an array of strings"; a body needs a Content-Type header; at most 20 requests."""
    resp = batch(tenant, payload)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "BadRequest"
    assert needle in resp.json()["error"]["message"]
    assert not [e for e in tenant.requests() if e["kind"] == "batch-item"]


def test_non_json_batch_is_400(tenant: SimTenant) -> None:
    resp = tenant.graph(
        "POST", "/$batch", content=b"requests=1", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadRequest"


def test_depends_on_orders_and_a_failed_dependency_is_424(tenant: SimTenant) -> None:
    """json-batching "Sequencing requests with the dependsOn property": dependants run after their
    dependencies; "If an individual request fails, any request that depends on that request fails with status
    code 424"."""
    body = {
        "accountEnabled": True,
        "displayName": "Batch Person",
        "mailNickname": "batchperson",
        "userPrincipalName": f"batchperson@{DOMAIN}",
        "passwordProfile": {"password": "Str0ng!Passw0rd-1", "forceChangePasswordNextSignIn": True},
    }
    payload = {
        "requests": [
            {"id": "3", "method": "GET", "url": "/users?$select=id", "dependsOn": ["2"]},
            {
                "id": "1",
                "method": "POST",
                "url": "/users",
                "body": body,
                "headers": {"Content-Type": "application/json"},
            },
            {
                "id": "2",
                "method": "POST",
                "url": "/users",
                "body": body,
                "headers": {"Content-Type": "application/json"},
                "dependsOn": ["1"],
            },
        ]
    }
    resp = batch(tenant, payload)
    assert resp.status_code == 200, resp.text
    responses = resp.json()["responses"]
    assert [r["id"] for r in responses] == ["1", "2", "3"]
    assert responses[0]["status"] == 201
    assert responses[1]["status"] == 400  # the same UPN again
    assert responses[2]["status"] == 424


def test_inner_requests_are_throttled_on_their_own(tenant: SimTenant) -> None:
    """json-batching "Batch size limitations": "Requests in a batch are evaluated individually against the
    applicable throttling limits and if any request exceeds the limits, it fails with a status of 429"; the
    outer status stays 200."""
    tenant.faults(resourceUnitsPer10s=4)
    resp = batch(tenant, {"requests": gets(5, "/users")})  # 2 RU each
    assert resp.status_code == 200
    statuses = sorted(r["status"] for r in resp.json()["responses"])
    assert statuses == [200, 200, 429, 429, 429]
    throttled = next(r for r in resp.json()["responses"] if r["status"] == 429)
    assert float(throttled["headers"]["Retry-After"]) > 0
    assert throttled["body"]["error"]["code"] == "TooManyRequests"


def test_faults_hit_the_outer_request_only(tenant: SimTenant) -> None:
    """Fault injection applies to the HTTP request, i.e. the whole batch, not its parts."""
    token = tenant.token()
    tenant.faults(errorRate=1, errorKinds=["500"])
    resp = batch(tenant, {"requests": gets(3)}, token=token)
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "generalException"
    assert not [e for e in tenant.requests() if e["kind"] == "batch-item"]
