"""Microsoft Graph access: one msgraph-sdk client per directory, built once per process.

Reads that only need a few ``$select``ed properties go through ``get_json``: the SDK's own request adapter
(token, retry and redirect middleware, Graph error mapping to ``ODataError``) returning the JSON document,
without msgraph-sdk's model deserialization — whose first use imports ~1,250 modules (about 1.4 s of a cold
start, measured by ``make bench``).

Tokens come from MSAL (``shared.adapters.identity``: client credentials with the directory's secret or
certificate, or the delegated token cache); the HTTP client is httpx with msgraph-core's middleware (see
``_middleware``), pointed at ``WARDEN_GRAPH_URL`` (the real Graph, or the simulated cloud locally). msgraph-sdk only sends the token to hosts in ``allowed_hosts``, so the Graph
host is always listed there. msgraph-sdk is imported lazily: it loads ~1,250 modules, which would
otherwise slow every cold start, including functions that never call Graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlparse

import httpx

from shared.adapters.graph_throttle import THROTTLED, ThrottleGate, parse_retry_after
from shared.adapters.tls import ssl_context
from shared.config import GRAPH_SCOPE

# httpx logs every request at INFO ("HTTP Request: GET https://graph...  200 OK"): with host.json's default
# "Information" each Graph call would become an Application Insights trace. Runs record their Graph requests,
# throttled waits and failures themselves; httpx keeps its warnings.
logging.getLogger("httpx").setLevel(logging.WARNING)

if TYPE_CHECKING:
    from pathlib import Path

    from azure.core.credentials_async import AsyncTokenCredential

    from shared.domain.model import Directory


@dataclass(frozen=True)
class GraphEndpoint:
    """Where Graph and the token authority live, and which CA to trust for them."""

    graph_url: str
    authority_host: str
    ca_bundle: Path | None


@dataclass
class GraphConnection:
    """One directory's Graph client with what it owns: the token credential, the HTTP client, the gate."""

    client: Any
    """A ``GraphServiceClient`` (typed Any: msgraph-sdk ships no type information)."""
    credential: AsyncTokenCredential
    http: httpx.AsyncClient
    gate: ThrottleGate
    hint: str | None = None
    """The first characters of the client secret in use (Graph's ``passwordCredential.hint``), if a secret."""

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.credential.close()


def _middleware(gate: ThrottleGate, credential: AsyncTokenCredential | None = None) -> list[Any]:
    """msgraph-core's default chain with three changes: the retry handler reads fractional Retry-After; a 401
    is answered once more with a token taken from Entra then (``credential``: a token Graph no longer accepts
    although it has not run out - revoked, or its lifetime cut short - is replaced, and a refresh token that no
    longer works says so as ``CredentialRefused``); and the innermost step is the directory's throttle gate, so
    every attempt (first or retried) passes it."""
    from kiota_http.kiota_client_factory import KiotaClientFactory
    from kiota_http.middleware import BaseMiddleware, RetryHandler
    from msgraph.graph_request_adapter import options as sdk_options
    from msgraph_core.middleware import GraphTelemetryHandler
    from msgraph_core.middleware.options import GraphTelemetryHandlerOption

    class FractionalRetryHandler(RetryHandler):
        def _parse_retry_after(self, retry_after: str) -> float | None:
            return parse_retry_after(retry_after)

    class GateMiddleware(BaseMiddleware):
        async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
            await gate.wait()
            response: httpx.Response = await super().send(request, transport)
            gate.usage.requests += 1
            with contextlib.suppress(ValueError):
                gate.usage.resource_units += int(response.headers.get("x-ms-resource-unit") or 0)
            if response.status_code == 429:
                gate.usage.throttled += 1
            if response.status_code in THROTTLED:
                delay = parse_retry_after(response.headers.get("retry-after"))
                if delay is not None:
                    gate.pause(delay)
            return response

    class ReauthMiddleware(BaseMiddleware):
        async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
            response: httpx.Response = await super().send(request, transport)
            if response.status_code != 401 or credential is None:
                return response
            token = await credential.get_token(GRAPH_SCOPE, claims="")  # claims given: a token from Entra now
            await response.aclose()
            request.headers["Authorization"] = f"Bearer {token.token}"
            again: httpx.Response = await super().send(request, transport)
            return again

    chain: list[Any] = []
    for handler in KiotaClientFactory.get_default_middleware(sdk_options):
        if isinstance(handler, RetryHandler):
            handler = FractionalRetryHandler(options=handler.options)
        chain.append(handler)
    chain.append(GraphTelemetryHandler(options=sdk_options[GraphTelemetryHandlerOption.get_key()]))
    chain.append(ReauthMiddleware())
    chain.append(GateMiddleware())
    return chain


def connect_graph(
    endpoint: GraphEndpoint,
    credential: AsyncTokenCredential,
    *,
    timeout_seconds: float = 30.0,
    reauth: bool = False,
    hint: str | None = None,
) -> GraphConnection:
    """A Graph client for one directory: msgraph-sdk over httpx, with the middleware of ``_middleware``."""
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory

    host = urlparse(endpoint.graph_url).hostname or ""
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
    gate = ThrottleGate()
    http = httpx.AsyncClient(
        base_url=endpoint.graph_url,
        verify=ssl_context(endpoint.ca_bundle),
        trust_env=False,
        timeout=httpx.Timeout(timeout_seconds),
    )
    http = GraphClientFactory.create_with_custom_middleware(
        _middleware(gate, credential if reauth else None), client=http
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = endpoint.graph_url
    return GraphConnection(GraphServiceClient(request_adapter=adapter), credential, http, gate, hint)


async def get_json(client: Any, path: str, query: Mapping[str, str] | None = None) -> Any:
    """GET ``path`` (below the version root, e.g. "/organization") through ``client``'s request adapter and
    return the parsed JSON. Graph errors raise msgraph-sdk's ``ODataError`` as the typed calls do."""
    return await send_json(client, "GET", path, query=query)


async def send_json(
    client: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Any Graph call through ``client``'s request adapter (token, retry, throttle gate, error mapping), with a
    JSON body and the JSON answer, without msgraph-sdk's model classes. ``headers``: e.g. ``ConsistencyLevel`` for
    an advanced query."""
    raw = await send(client, method, path, body=body, query=query, headers=headers)
    return json.loads(raw) if raw else None


async def send(
    client: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes | None:
    """``send_json``'s call, the answer's bytes as they came (for a caller that parses them its own way)."""
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    adapter = client.request_adapter
    info = RequestInformation()
    info.http_method = Method[method]
    info.url = f"{adapter.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
    info.headers.try_add("Accept", "application/json")
    for name, value in (headers or {}).items():
        info.headers.try_add(name, value)
    if body is not None:
        info.set_stream_content(json.dumps(body).encode(), "application/json")
    raw: bytes | None = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
    return raw


async def get_batch(client: Any, gets: Mapping[str, str]) -> dict[str, tuple[int, Any]]:
    """Several GETs (``id`` → path with its query, below the version root) in one ``$batch`` request
    (https://learn.microsoft.com/en-us/graph/json-batching): each answer's status and body by id. The outer
    request fails as ``get_json`` would; inner answers are per request, in any order."""
    body = {"requests": [{"id": i, "method": "GET", "url": url} for i, url in gets.items()]}
    answer = await send_json(client, "POST", "/$batch", body=body)
    out: dict[str, tuple[int, Any]] = {}
    for r in (answer or {}).get("responses", []):
        out[str(r.get("id"))] = (int(r.get("status", 0)), r.get("body"))
    return out


class CredentialSource(Protocol):
    async def __call__(self, directory: Directory) -> tuple[AsyncTokenCredential, str | None]:
        """The directory's token credential (``shared.adapters.identity``) and its secret's hint, if a secret."""


class DirectoryClients:
    """One Graph client per connected directory, built on first use with the directory's credential (read from
    Key Vault) and kept for the life of the process (``DirectoryGraph``)."""

    def __init__(self, endpoint: GraphEndpoint, credentials: CredentialSource) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self._connections: dict[str, GraphConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def connection(self, directory: Directory) -> GraphConnection:
        lock = self._locks.setdefault(directory.id, asyncio.Lock())
        async with lock:
            connection = self._connections.get(directory.id)
            if connection is None:
                credential, hint = await self.credentials(directory)
                connection = self._connections[directory.id] = connect_graph(
                    self.endpoint, credential, reauth=True, hint=hint
                )
            return connection

    async def client_for(self, directory: Directory) -> Any:
        return (await self.connection(directory)).client

    def gate_if_built(self, directory_id: str) -> ThrottleGate | None:
        connection = self._connections.get(directory_id)
        return connection.gate if connection is not None else None

    def gate_for(self, directory_id: str) -> ThrottleGate:
        """The directory's throttle gate (built with its client)."""
        return self._connections[directory_id].gate

    async def probe(self, directory: Directory) -> None:
        body = await get_json(await self.client_for(directory), "/organization", {"$select": "id"})
        if not isinstance(body, dict) or not body.get("value"):
            raise LookupError("Graph answered /organization without the tenant")

    async def forget(self, directory_id: str) -> None:
        connection = self._connections.pop(directory_id, None)
        if connection is not None:
            await connection.aclose()

    async def aclose(self) -> None:
        for directory_id in list(self._connections):
            await self.forget(directory_id)


class TenantClients:
    """Graph clients for tenants that are not connected directories (the demo tenant a local run's health check
    reads until it is connected), one per tenant and app, built on first use from a Key Vault secret and kept."""

    def __init__(self, endpoint: GraphEndpoint, read_secret: Callable[[str], Awaitable[str]]) -> None:
        self.endpoint = endpoint
        self.read_secret = read_secret
        self.connections: dict[tuple[str, str], GraphConnection] = {}
        self._lock = asyncio.Lock()

    async def client_for(self, tenant_id: str, client_id: str, secret_name: str) -> Any:
        """The tenant's Graph client (a ``GraphServiceClient``); its app's secret is read from Key Vault once."""
        key = (tenant_id, client_id)
        async with self._lock:
            if key not in self.connections:
                from shared.adapters.own_identity import client_secret_credential

                secret = await self.read_secret(secret_name)
                e = self.endpoint
                credential = client_secret_credential(
                    e.authority_host, e.ca_bundle, tenant_id, client_id, secret
                )
                self.connections[key] = connect_graph(e, credential)
            return self.connections[key].client

    async def probe(self, tenant_id: str, client_id: str, secret_name: str) -> None:
        client = await self.client_for(tenant_id, client_id, secret_name)
        body = await get_json(client, "/organization", {"$select": "id"})
        if not isinstance(body, dict) or not body.get("value"):
            raise LookupError("Graph answered /organization without the tenant")

    async def aclose(self) -> None:
        for connection in self.connections.values():
            await connection.aclose()
        self.connections.clear()
