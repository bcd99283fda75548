"""Reading a tenant with an app's credentials, before Warden keeps them: a token from Entra ID, then
``GET /organization`` and ``GET /domains`` through Graph.

Entra's refusals become ``Invalid`` naming the AADSTS code and Entra's own first sentence (e.g. "AADSTS7000215:
Invalid client secret provided."), never the secret; Graph's permission refusals name the permissions the
app needs; anything unreachable or failing is ``Upstream``.
https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
https://learn.microsoft.com/en-us/graph/api/organization-get, .../domain-list
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from shared.adapters.graph import GraphEndpoint, connect_graph, get_json
from shared.adapters.identity import client_secret_credential
from shared.config import GRAPH_SCOPE
from shared.domain.errors import Invalid, Upstream
from shared.domain.model import Domain
from shared.service.ports import TenantInfo

_AADSTS = re.compile(r"AADSTS(\d+):\s*([^\r\n]*)")
READ_TIMEOUT_SECONDS = 20.0


def entra_refusal(message: str, secret: str) -> str:
    """A short, secret-free account of an Entra error message."""
    found = _AADSTS.search(message)
    if found is None:
        return "Entra ID refused the app's credentials"
    code, text = found.groups()
    sentence = text.split(". ")[0].rstrip(".")
    if secret and secret in sentence:
        sentence = sentence.replace(secret, "***")
    return f"AADSTS{code}: {sentence}."


class GraphTenantReader:
    def __init__(self, endpoint: GraphEndpoint) -> None:
        self.endpoint = endpoint

    async def inspect(self, tenant_id: str, client_id: str, client_secret: str) -> TenantInfo:
        try:
            return await asyncio.wait_for(
                self._inspect(tenant_id, client_id, client_secret), READ_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise Upstream(f"Entra ID or Graph did not answer within {READ_TIMEOUT_SECONDS:g} s") from None

    async def _inspect(self, tenant_id: str, client_id: str, client_secret: str) -> TenantInfo:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        e = self.endpoint
        credential = client_secret_credential(
            e.authority_host, e.ca_bundle, tenant_id, client_id, client_secret
        )
        connection = connect_graph(e, credential)
        try:
            try:
                await credential.get_token(GRAPH_SCOPE)
            except ClientAuthenticationError as exc:
                detail = entra_refusal(str(exc.message or exc), client_secret)
                raise Invalid(
                    f"auth: Entra ID refused the credentials for tenant {tenant_id} and client {client_id}: {detail}",
                    field="auth",
                    entraError=detail.split(":")[0] if detail.startswith("AADSTS") else None,
                ) from None
            except ServiceRequestError:
                raise Upstream("Entra ID could not be reached") from None
            org = await self._read(connection.client, "/organization", "id,displayName,onPremisesSyncEnabled")
            domains = await self._read(
                connection.client,
                "/domains",
                "id,isVerified,isDefault,isInitial,authenticationType,passwordValidityPeriodInDays",
            )
        finally:
            await connection.aclose()
        value = (org or {}).get("value") or []
        if not value:
            raise Upstream("Graph answered /organization without the tenant")
        sync = value[0].get("onPremisesSyncEnabled")
        return TenantInfo(
            tenant_id=str(value[0].get("id") or tenant_id).lower(),
            display_name=value[0].get("displayName"),
            on_premises_sync_enabled=sync if isinstance(sync, bool) else None,
            domains=tuple(
                Domain(
                    str(d["id"]),
                    bool(d.get("isVerified")),
                    bool(d.get("isDefault")),
                    str(d.get("authenticationType") or "Managed"),
                    bool(d.get("isInitial")),
                    d.get("passwordValidityPeriodInDays")
                    if isinstance(d.get("passwordValidityPeriodInDays"), int)
                    else None,
                )
                for d in (domains or {}).get("value", [])
            ),
        )

    @staticmethod
    async def _read(client: Any, path: str, select: str) -> Any:
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        try:
            return await get_json(client, path, {"$select": select})
        except ODataError as exc:
            status = getattr(exc, "response_status_code", None)
            code = getattr(getattr(exc, "error", None), "code", None)
            if status == 403:
                raise Invalid(
                    f"auth: the app may not read {path} ({code}); grant it the Graph application permissions "
                    "Organization.Read.All and Domain.Read.All (see README) and admin consent",
                    field="auth",
                ) from None
            raise Upstream(f"Graph answered GET {path} with HTTP {status} {code or ''}".rstrip()) from None
        except Exception as exc:
            if type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError"):
                raise Upstream(f"Graph could not be reached for GET {path}") from None
            raise
