"""Warden's own identity: the tokens Warden asks for itself (Key Vault's, and the demo tenant's Graph client) —
the Function App's managed identity in Azure, a client secret where none exists (local runs) — through MSAL.

MSAL is the library under azure-identity too; taken directly it spares a process's first token the whole of
``azure.identity``, whose package import also loads every other credential, ``cryptography.x509`` and the
certificate machinery (about 75 ms of a cold process's first Graph answer, ``make bench`` cold start (b)).
``OwnCredential`` is what azure-core's ``AsyncTokenCredential`` protocol asks (``get_token``, ``close``) over:
- ``msal.ManagedIdentityClient`` with the system-assigned identity (the Bicep gives the Function App one): App
  Service's local token endpoint (``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``, which the platform sets; a GET with
  the ``resource``), or IMDS on a VM
  (https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity#rest-endpoint-reference);
- ``msal.ConfidentialClientApplication`` with the client secret (client credentials, ``<resource>/.default``).
Both keep their tokens in MSAL's in-memory cache until shortly before they expire. MSAL is synchronous
(``requests``): its calls run in a thread, never on the event loop; its session trusts the CA it is given, not
``REQUESTS_CA_BUNDLE``.

Apart from ``shared.adapters.identity`` (the connected directories' tokens) on purpose: reading a secret from Key
Vault, or the demo tenant's Graph client, needs neither its applications and kept OpenID configurations nor the
use cases' ports and the domain they bring.

Key Vault's requests go through azure-core's asyncio transport over ``requests`` rather than its default aiohttp
one: a handful of secret requests per directory and hour need no connection pool of their own, and ``requests`` is
loaded with MSAL anyway, while aiohttp would add about a third of the cold path to a process's first Graph answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Self

from shared.adapters.tls import connection_verify

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    import requests
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential

DEFAULT_SUFFIX = "/.default"


POOL_SIZE = 32
"""Connections kept per host: token requests in flight at once (a refresh round over many directories) and Key
Vault's requests, each waiting on the network only."""


@cache
def http_session(ca_bundle: Path | None) -> requests.Session:
    """The process's one ``requests`` session (one connection pool, each TLS connection made once) for every MSAL
    client — Warden's own and the directories' — and Key Vault's transport; never closed with one of them."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override ``verify``
    session.verify = connection_verify(ca_bundle)
    session.mount("https://", HTTPAdapter(pool_connections=16, pool_maxsize=POOL_SIZE))
    return session


def azure_transport(ca_bundle: Path | None) -> object:
    """An azure-core async transport (``AsyncioRequestsTransport``, which azure-core leaves untyped) over the
    process's session (``http_session``), verifying TLS with ``ca_bundle`` (or the system store)."""
    from azure.core.pipeline.transport import AsyncioRequestsTransport

    transport: object = AsyncioRequestsTransport(
        session=http_session(ca_bundle),
        session_owner=False,
        use_env_settings=False,
        connection_verify=connection_verify(ca_bundle),
    )
    return transport


Acquire = Callable[[str, str | None], Mapping[str, Any]]
"""MSAL's blocking call for one scope; claims given (even empty): not from the cache."""


def access_token(result: Mapping[str, Any]) -> AccessToken:
    """MSAL's answer (``access_token``, ``expires_in``) as azure-core's ``AccessToken``."""
    from azure.core.credentials import AccessToken

    return AccessToken(str(result["access_token"]), int(time.time()) + int(result.get("expires_in") or 0))


TOKEN_MARGIN_SECONDS = 300
"""A held token is not handed out in its last five minutes (MSAL's own margin for the tokens it caches)."""


class HeldTokens:
    """The access token MSAL last gave for each set of scopes, handed out again until MSAL would stop serving it
    from its cache (five minutes before it expires, or from when MSAL would refresh it ahead of time). MSAL's cache
    answers the same, but on a worker thread: every Graph request would wait for a thread and the GIL, which a
    busy event loop (a reconcile planning a page of accounts while it asks for the next) makes tens of
    milliseconds."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, ...], tuple[AccessToken, float]] = {}

    def get(self, scopes: Sequence[str]) -> AccessToken | None:
        held = self._held.get(tuple(scopes))
        return held[0] if held is not None and time.time() < held[1] else None

    def usable(self, scopes: Sequence[str], fresh: bool) -> AccessToken | None:
        """The token held for ``scopes``; none when one from Entra is wanted now (``fresh``: all are dropped)."""
        if fresh:
            self.drop()
            return None
        return self.get(scopes)

    def keep(self, scopes: Sequence[str], result: Mapping[str, Any]) -> AccessToken:
        """MSAL's answer as a token, held for the next requests."""
        token = access_token(result)
        until = float(token.expires_on - TOKEN_MARGIN_SECONDS)
        if result.get("refresh_on"):  # when MSAL would refresh it ahead of time (Entra's ``refresh_in``)
            until = min(until, float(result["refresh_on"]))
        self._held[tuple(scopes)] = (token, until)
        return token

    def drop(self) -> None:
        self._held.clear()


class Closable:
    """What azure-core's ``AsyncTokenCredential`` protocol asks besides ``get_token``."""

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()


class OwnCredential(Closable):
    """azure-core's ``AsyncTokenCredential`` over one MSAL client (see the module's text). ``claims`` given (a
    claims challenge, or a token refused although its lifetime says it is valid): a token from Entra now."""

    def __init__(self, what: str, acquire: Acquire) -> None:
        self.what = what
        self._acquire = acquire
        self._lock = asyncio.Lock()
        self._held = HeldTokens()

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        if len(scopes) != 1:
            raise ValueError(f"{self.what}: one scope at a time, not {len(scopes)}")
        if (held := self._held.usable(scopes, claims is not None)) is not None:
            return held
        import requests

        async with self._lock:  # callers at once wait for one token request, then share MSAL's cache
            try:
                result = await asyncio.to_thread(self._acquire, scopes[0], claims)
            except requests.RequestException as exc:
                raise ServiceRequestError(f"{self.what}: the token endpoint could not be reached") from exc
        if "access_token" not in result:
            error = str(result.get("error") or "no token")
            description = str(result.get("error_description") or "").split("\r")[0].split("\n")[0][:300]
            raise ClientAuthenticationError(message=f"{self.what}: {error}: {description}")
        return self._held.keep(scopes, result)


def client_secret_credential(
    authority_host: str, ca_bundle: Path | None, tenant_id: str, client_id: str, client_secret: str
) -> AsyncTokenCredential:
    """Client credentials with a secret (Warden's own Key Vault identity where no managed identity exists, the
    demo tenant's app). MSAL reads the tenant's OpenID configuration on the first token, in the thread; MSAL itself is
    imported here, on the caller's thread (two threads importing one package at once can fail)."""
    import msal  # type: ignore[import-untyped]

    built: list[Any] = []

    def acquire(scope: str, claims: str | None) -> Mapping[str, Any]:
        if not built:
            built.append(
                msal.ConfidentialClientApplication(
                    client_id,
                    client_credential=client_secret,
                    authority=f"{authority_host.rstrip('/')}/{tenant_id}",
                    http_client=http_session(ca_bundle),
                    instance_discovery=False,
                )
            )
        app = built[0]
        if claims is not None:
            app.remove_tokens_for_client()
        result: Mapping[str, Any] = app.acquire_token_for_client([scope])
        return result

    return OwnCredential(f"client {client_id}", acquire)


def managed_identity_credential(ca_bundle: Path | None) -> AsyncTokenCredential:
    """The Function App's system-assigned managed identity (MSAL's ``ManagedIdentityClient``): a token for the
    scope's resource (the scope without ``/.default``)."""
    import msal

    client = msal.ManagedIdentityClient(
        msal.SystemAssignedManagedIdentity(), http_client=http_session(ca_bundle)
    )

    def acquire(scope: str, claims: str | None) -> Mapping[str, Any]:
        # A claims challenge makes MSAL pass its cache by (App Service's endpoint takes no claims: "{}" will do).
        challenge = None if claims is None else (claims or "{}")
        result: Mapping[str, Any] = client.acquire_token_for_client(
            resource=scope.removesuffix(DEFAULT_SUFFIX), claims_challenge=challenge
        )
        return result

    return OwnCredential("the managed identity", acquire)
