"""Acceptance: the real msgraph-sdk (kiota, azure-identity underneath) against the simulated cloud.

Every test names the Microsoft page it follows and asserts something that would break if the simulator
behaved differently from Graph.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_response_content import BatchResponseContent
from msgraph_core.tasks.page_iterator import PageIterator

from tests.sim.conftest import (
    DOMAIN,
    SEED_USERS,
    UNVERIFIED,
    SimTenant,
    graph_client,
)

ERRORS: dict[str, Any] = {"XXX": ODataError}


@pytest.fixture
async def graph(tenant: SimTenant) -> AsyncIterator[GraphServiceClient]:
    """GraphServiceClient on the simulator, kiota's RetryHandler switched off so that a 429 reaches the test (it
    would otherwise retry, sleeping Retry-After or ~3 s of backoff)."""
    async with graph_client(tenant) as client:
        yield client


def new_user(nick: str, domain: str = DOMAIN) -> User:
    return User(
        account_enabled=True,
        display_name=nick.title(),
        mail_nickname=nick,
        user_principal_name=f"{nick}@{domain}",
        password_profile=PasswordProfile(
            password="Str0ng!Passw0rd-9", force_change_password_next_sign_in=True
        ),
    )


def users_query(
    **kwargs: Any,
) -> RequestConfiguration[UsersRequestBuilder.UsersRequestBuilderGetQueryParameters]:
    return RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**kwargs)
    )


async def test_paging_with_top_and_page_iterator(graph: GraphServiceClient, tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/paging : $top sets the page size, @odata.nextLink leads to the
    next page until the last; PageIterator follows it."""
    first = await graph.users.get(
        request_configuration=users_query(top=5, select=["id", "userPrincipalName"])
    )
    assert first is not None and first.value is not None
    assert len(first.value) == 5 and first.odata_next_link
    seen: list[str] = []
    iterator = PageIterator(first, graph.request_adapter)  # next pages parse as type(first)

    def collect(user: User) -> bool:
        seen.append(str(user.id))
        return True

    await iterator.iterate(collect)
    assert len(seen) == SEED_USERS and len(set(seen)) == SEED_USERS
    pages = [e for e in tenant.requests() if e["kind"] == "graph"]
    assert len(pages) == 3  # 5 + 5 + 2


async def test_top_1000_is_rejected(graph: GraphServiceClient) -> None:
    """https://learn.microsoft.com/en-us/graph/paging (users: $top 1 to 999): $top=1000 is 400."""
    with pytest.raises(ODataError) as exc:
        await graph.users.get(request_configuration=users_query(top=1000))
    assert exc.value.response_status_code == 400
    assert exc.value.error is not None and "999" in str(exc.value.error.message)


async def test_duplicate_upn_is_rejected(graph: GraphServiceClient) -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-post-users : 201 Created; a second user with the same
    userPrincipalName is 400 ("Another object with the same value for property userPrincipalName already
    exists.")."""
    created = await graph.users.post(new_user("dupe"))
    assert created is not None and created.id
    with pytest.raises(ODataError) as exc:
        await graph.users.post(new_user("dupe"))
    assert exc.value.response_status_code == 400
    assert exc.value.error is not None and "userPrincipalName" in str(exc.value.error.message)


async def test_unverified_upn_domain_is_rejected(graph: GraphServiceClient) -> None:
    """https://learn.microsoft.com/en-us/graph/api/resources/user (userPrincipalName: the domain must be one of
    the tenant's verified domains)."""
    with pytest.raises(ODataError) as exc:
        await graph.users.post(new_user("nobody", UNVERIFIED))
    assert exc.value.response_status_code == 400


async def test_delta_round_trip_sees_a_new_user(graph: GraphServiceClient) -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview : follow @odata.nextLink to the
    @odata.deltaLink; the deltaLink later returns only what changed."""
    page = await graph.users.delta.get()
    ids: set[str] = set()
    for _ in range(50):  # bounded
        assert page is not None
        ids.update(str(u.id) for u in page.value or [])
        if page.odata_delta_link:
            break
        assert page.odata_next_link
        page = await graph.users.delta.with_url(page.odata_next_link).get()
    assert page is not None and page.odata_delta_link and len(ids) == SEED_USERS
    created = await graph.users.post(new_user("deltaperson"))
    assert created is not None
    changes = await graph.users.delta.with_url(page.odata_delta_link).get()
    assert changes is not None
    changed_ids = {str(u.id) for u in changes.value or []}
    assert str(created.id) in changed_ids and not (changed_ids - {str(created.id)})


async def _post_raw_batch(graph: GraphServiceClient, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """POST /$batch through the SDK's own request adapter (auth, middleware, error mapping), for a body
    msgraph-core's BatchRequestContent refuses to build (it stops at 20 requests client-side)."""
    info = RequestInformation()
    info.http_method = Method.POST
    info.url = f"{graph.request_adapter.base_url}/$batch"
    info.set_stream_content(json.dumps({"requests": steps}).encode(), "application/json")
    raw = await graph.request_adapter.send_primitive_async(info, "bytes", ERRORS)  # type: ignore[func-returns-value]
    assert isinstance(raw, bytes)
    return dict(json.loads(raw))


async def test_batch_of_20_accepted_and_21_rejected(graph: GraphServiceClient) -> None:
    """https://learn.microsoft.com/en-us/graph/json-batching : "JSON batch requests are currently limited to 20
    individual requests"; a malformed batch is 400, a parseable one 200 with a response per id."""
    content = BatchRequestContent()
    for i in range(1, 21):
        info = graph.users.to_get_request_information(users_query(top=1, select=["id"]))
        content.add_request_information(info, request_id=str(i))
    response = await BatchRequestBuilder(graph.request_adapter, ERRORS).post(content)
    assert isinstance(response, BatchResponseContent)
    sent_ids = set(content.requests)
    assert len(sent_ids) == 20
    assert response.get_response_status_codes() == dict.fromkeys(sent_ids, 200)
    with pytest.raises(RuntimeError):  # the SDK itself refuses a 21st request
        content.add_request_information(graph.users.to_get_request_information(), request_id="21")
    steps = [{"id": str(i), "method": "GET", "url": "/users?$top=1&$select=id"} for i in range(1, 22)]
    with pytest.raises(APIError) as exc:
        await _post_raw_batch(graph, steps)
    assert exc.value.response_status_code == 400


async def test_throttling_429_with_retry_after(graph: GraphServiceClient, tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits and
    https://learn.microsoft.com/en-us/graph/throttling : once the app's resource units are spent, Graph answers
    429 with Retry-After."""
    tenant.faults(resourceUnitsPer10s=6)
    error: ODataError | None = None
    for _ in range(10):  # GET /users costs 2 RU: the 4th call is over budget
        try:
            await graph.users.get()
        except ODataError as exc:
            error = exc
            break
    assert error is not None and error.response_status_code == 429
    headers = {k.lower(): v for k, v in (error.response_headers or {}).items()}
    retry_after = headers["retry-after"]
    assert 0 < float(retry_after[0] if isinstance(retry_after, list) else retry_after) <= 10
    graph_calls = [e for e in tenant.requests() if e["kind"] == "graph"]
    assert [e["status"] for e in graph_calls] == [200, 200, 200, 429]


async def test_replication_lag_new_user_404_then_visible(
    graph: GraphServiceClient, tenant: SimTenant
) -> None:
    """https://learn.microsoft.com/en-us/graph/delta-query-overview#processing-delays (and the user resource's
    note on replication): a just-created user may be briefly invisible to reads."""
    tenant.faults(replicationLagMs=800)
    created = await graph.users.post(new_user("laggard"))
    assert created is not None and created.id
    started = time.monotonic()
    with pytest.raises(ODataError) as exc:
        await graph.users.by_user_id(str(created.id)).get()
    assert exc.value.response_status_code == 404
    found = None
    while time.monotonic() - started < 5:  # bounded
        try:
            found = await graph.users.by_user_id(str(created.id)).get()
            break
        except ODataError as e:
            assert e.response_status_code == 404
            await asyncio.sleep(0.1)
    assert found is not None and found.user_principal_name == f"laggard@{DOMAIN}"
    assert time.monotonic() - started >= 0.6
    assert json.dumps(tenant.requests())  # the log stays serialisable
