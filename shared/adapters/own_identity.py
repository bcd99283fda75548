"""Warden's own identity: azure-identity's credentials for Key Vault (a client secret where no managed identity
exists), over azure-core's asyncio transport on ``requests``.

Apart from ``shared.adapters.identity`` (MSAL, the connected directories' tokens) on purpose: reading a secret from
Key Vault, or the demo tenant's Graph client, needs neither MSAL's applications nor the use cases' ports and the
domain they bring (about a fifth of a process's first Graph answer, ``make bench`` cold start (b)).

Key Vault's requests go through azure-core's asyncio transport over ``requests`` rather than its default aiohttp
one: a handful of secret requests per directory and hour need no connection pool of their own, and ``requests`` is
loaded with azure-identity (MSAL) anyway, while aiohttp would add about a third of the cold path to a process's first
Graph answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters.tls import connection_verify

if TYPE_CHECKING:
    from pathlib import Path

    from azure.core.credentials_async import AsyncTokenCredential


def azure_transport(ca_bundle: Path | None) -> object:
    """An azure-core async transport (``AsyncioRequestsTransport``, which azure-core leaves untyped) verifying TLS
    with ``ca_bundle`` (or the system store). A verify path given per transport is not overridden by
    ``REQUESTS_CA_BUNDLE``: requests only consults it when verify is True."""
    from azure.core.pipeline.transport import AsyncioRequestsTransport

    transport: object = AsyncioRequestsTransport(connection_verify=connection_verify(ca_bundle))
    return transport


def client_secret_credential(
    authority_host: str, ca_bundle: Path | None, tenant_id: str, client_id: str, client_secret: str
) -> AsyncTokenCredential:
    """azure-identity's client-secret credential (Warden's own Key Vault identity where no managed identity
    exists)."""
    from azure.identity.aio import ClientSecretCredential

    return ClientSecretCredential(
        tenant_id,
        client_id,
        client_secret,
        authority=authority_host,
        connection_verify=connection_verify(ca_bundle),
        transport=azure_transport(ca_bundle),
    )
