"""Token credentials from azure-identity, pointed at the configured authority and trusting its CA."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters.tls import connection_verify

if TYPE_CHECKING:
    from pathlib import Path

    from azure.core.credentials_async import AsyncTokenCredential


def client_secret_credential(
    authority_host: str, ca_bundle: Path | None, tenant_id: str, client_id: str, client_secret: str
) -> AsyncTokenCredential:
    from azure.identity.aio import ClientSecretCredential

    return ClientSecretCredential(
        tenant_id,
        client_id,
        client_secret,
        authority=authority_host,
        connection_verify=connection_verify(ca_bundle),
    )
