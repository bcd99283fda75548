"""Reading a tenant: before Warden keeps an app's credentials (a token from Entra ID, then the organisation, its
domains and the app registration's own credentials in one Graph ``$batch``), and for a connected directory's
token refresh round (a token, then ``onPremisesSyncEnabled`` and the app's credentials in one ``$batch``).

Entra's refusals become ``Invalid`` naming the AADSTS code and Entra's own first sentence (e.g. "AADSTS7000215:
Invalid client secret provided."), never the secret; Graph's permission refusals name the permissions the
app needs; anything unreachable or failing is ``Upstream``. The app's credentials
(``GET /applications(appId='…')?$select=id,appId,passwordCredentials,keyCredentials``, least privilege
Application.Read.All) are optional: without the permission, Warden says so and keeps the admin-given date.
https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
https://learn.microsoft.com/en-us/graph/api/organization-get, .../domain-list, .../application-get
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shared.adapters.graph import DirectoryClients, GraphConnection, GraphEndpoint, connect_graph, get_batch
from shared.adapters.identity import AppOnlyCredential, Authority, TokenNotIssued, built, in_thread, once
from shared.adapters.m365.tenant import ROLE_READS, GraphTenant
from shared.domain.connections import AppCredential
from shared.domain.errors import CredentialRefused, Invalid, Upstream
from shared.domain.model import Directory, Domain
from shared.service.connections.ports import ClientCredential, ConnectionCheck
from shared.service.ports import TenantInfo

_AADSTS = re.compile(r"AADSTS(\d+):\s*([^\r\n]*)")
READ_TIMEOUT_SECONDS = 20.0
ORGANIZATION = "/organization?$select=id,displayName,onPremisesSyncEnabled"
DOMAINS = "/domains?$select=id,isVerified,isDefault,isInitial,authenticationType,passwordValidityPeriodInDays"


def application(client_id: str) -> str:
    return f"/applications(appId='{client_id}')?$select=id,appId,passwordCredentials,keyCredentials"


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


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def app_credentials(body: Any) -> tuple[AppCredential, ...]:
    """The ``passwordCredentials`` and ``keyCredentials`` of an application resource."""
    out: list[AppCredential] = []
    for p in (body or {}).get("passwordCredentials") or []:
        out.append(
            AppCredential(str(p.get("keyId")), "secret", _time(p.get("endDateTime")), hint=p.get("hint"))
        )
    for k in (body or {}).get("keyCredentials") or []:
        out.append(
            AppCredential(
                str(k.get("keyId")),
                "certificate",
                _time(k.get("endDateTime")),
                custom_key_identifier=k.get("customKeyIdentifier"),
            )
        )
    return tuple(out)


def _unreadable(status: int, body: Any) -> str:
    code = ((body or {}).get("error") or {}).get("code") if isinstance(body, dict) else None
    if status == 403:
        return (
            "the app may not read its own registration (grant it the Graph permission Application.Read.All): "
            "the credential's expiry is the date an admin gave"
        )
    if status == 404:
        return "the app registration is not in this tenant: the credential's expiry is the date an admin gave"
    return f"Graph answered HTTP {status} {code or ''} reading the app registration".rstrip()


def _credentials(answer: tuple[int, Any] | None) -> tuple[tuple[AppCredential, ...] | None, str | None]:
    if answer is None:
        return None, "Graph did not answer for the app registration"
    status, body = answer
    if status == 200:
        return app_credentials(body), None
    return None, _unreadable(status, body)


def _required(answers: Mapping[str, tuple[int, Any]], key: str, path: str) -> Any:
    status, body = answers.get(key, (0, None))
    if status == 403:
        raise Invalid(
            f"auth: the app may not read {path} (Authorization_RequestDenied); grant it the Graph permissions "
            "Organization.Read.All and Domain.Read.All (see README) and admin consent",
            field="auth",
        )
    if status != 200:
        raise Upstream(f"Graph answered GET {path} with HTTP {status}")
    return body


def _organization(answers: Mapping[str, tuple[int, Any]]) -> dict[str, Any]:
    value = (_required(answers, "organization", "/organization") or {}).get("value") or []
    if not value:
        raise Upstream("Graph answered /organization without the tenant")
    first: dict[str, Any] = value[0]
    return first


def tenant_info(tenant_id: str, answers: Mapping[str, tuple[int, Any]]) -> TenantInfo:
    org = _organization(answers)
    domains = _required(answers, "domains", "/domains") or {}
    sync = org.get("onPremisesSyncEnabled")
    credentials, unreadable = _credentials(answers.get("application"))
    return TenantInfo(
        tenant_id=str(org.get("id") or tenant_id).lower(),
        display_name=org.get("displayName"),
        on_premises_sync_enabled=sync if isinstance(sync, bool) else None,
        domains=tuple(
            Domain(
                str(d["id"]),
                bool(d.get("isVerified")),
                bool(d.get("isDefault")),
                str(d.get("authenticationType") or "Managed"),
                bool(d.get("isInitial")),
                validity if isinstance(validity := d.get("passwordValidityPeriodInDays"), int) else None,
            )
            for d in domains.get("value", [])
        ),
        credentials=credentials,
        credentials_unreadable=unreadable,
    )


async def _batch(connection: GraphConnection, gets: Mapping[str, str]) -> dict[str, tuple[int, Any]]:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    try:
        return await get_batch(connection.client, gets)
    except ODataError as exc:
        status = getattr(exc, "response_status_code", None)
        raise Upstream(f"Graph answered its $batch with HTTP {status}") from None
    except CredentialRefused:
        raise
    except Exception as exc:
        if type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError"):
            raise Upstream("Graph could not be reached") from None
        raise


class GraphTenantReader:
    """``TenantCredentials``: credentials checked before they are kept."""

    def __init__(self, endpoint: GraphEndpoint, authority: Authority | None = None) -> None:
        self.endpoint = endpoint
        self._authority = authority

    @property
    def authority(self) -> Authority:
        """The composition root's (its OpenID configurations kept between processes), or the endpoint's own."""
        if self._authority is not None:
            return self._authority
        return Authority(self.endpoint.authority_host, self.endpoint.ca_bundle)

    def _credential(self, tenant_id: str, client_id: str, credential: ClientCredential) -> AppOnlyCredential:
        a = self.authority

        async def build() -> Any:
            import requests

            try:
                return await built(a, tenant_id, client_id, credential, build=in_thread)
            except requests.RequestException:
                raise Upstream("Entra ID could not be reached") from None
            except ValueError:  # MSAL could not read the tenant's OpenID configuration
                raise Invalid(
                    f"tenantId: Entra ID does not know the tenant {tenant_id} (its OpenID configuration could "
                    "not be read)",
                    field="tenantId",
                ) from None

        return AppOnlyCredential(f"new:{tenant_id}", once(build))

    async def _token(self, tenant_id: str, client_id: str, credential: ClientCredential) -> AppOnlyCredential:
        token_credential = self._credential(tenant_id, client_id, credential)
        try:
            await token_credential.fresh()
        except (CredentialRefused, TokenNotIssued) as exc:
            detail = entra_refusal(exc.description, credential.value)
            code = f"AADSTS{exc.codes[0]}" if exc.codes else None
            if code and not detail.startswith("AADSTS"):
                detail = f"{code} ({exc.error})"
            raise Invalid(
                f"auth: Entra ID refused the credentials for tenant {tenant_id} and client {client_id}: {detail}",
                field="auth",
                entraError=code,
            ) from None
        return token_credential

    async def inspect(self, tenant_id: str, client_id: str, credential: ClientCredential) -> TenantInfo:
        try:
            return await asyncio.wait_for(
                self._inspect(tenant_id, client_id, credential), READ_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise Upstream(f"Entra ID or Graph did not answer within {READ_TIMEOUT_SECONDS:g} s") from None

    async def _inspect(self, tenant_id: str, client_id: str, credential: ClientCredential) -> TenantInfo:
        token_credential = await self._token(tenant_id, client_id, credential)
        connection = connect_graph(self.endpoint, token_credential)
        try:
            answers = await _batch(
                connection,
                {"organization": ORGANIZATION, "domains": DOMAINS, "application": application(client_id)},
            )
        finally:
            await connection.aclose()
        return tenant_info(tenant_id, answers)

    async def validate(self, tenant_id: str, client_id: str, credential: ClientCredential) -> None:
        try:
            await asyncio.wait_for(self._token(tenant_id, client_id, credential), READ_TIMEOUT_SECONDS)
        except TimeoutError:
            raise Upstream(f"Entra ID did not answer within {READ_TIMEOUT_SECONDS:g} s") from None


class TenantConnections:
    """``DirectoryConnections``: a connected directory's checks, through its own Graph client."""

    def __init__(self, clients: DirectoryClients, roles: GraphTenant | None = None) -> None:
        self.clients = clients
        self.roles = roles
        """Where the role holders' first pages, read in the check's ``$batch``, are completed (rule 23)."""

    async def check(self, directory: Directory, *, refresh: bool) -> ConnectionCheck:
        """One ``$batch``: the organization (rule 17), the app registration (the credential's expiry) and, with
        ``roles``, the first page of each of the role holders' reads (rule 23)."""
        connection = await self.clients.connection(directory)
        refreshed = False
        if refresh:
            refreshed = await connection.credential.fresh()  # type: ignore[attr-defined]
        gets = {"organization": ORGANIZATION, "application": application(directory.client_id)}
        if self.roles is not None:
            gets.update(ROLE_READS)
        answers = await _batch(connection, gets)
        sync = _organization(answers).get("onPremisesSyncEnabled")
        credentials, unreadable = _credentials(answers.get("application"))
        check = ConnectionCheck(
            refreshed=refreshed,
            on_premises_sync_enabled=sync if isinstance(sync, bool) else None,
            credentials=credentials,
            unreadable=unreadable,
            hint=connection.hint,
        )
        if self.roles is None:
            return check
        try:
            holders = await self.roles.role_holders(directory, first=answers)
        except Upstream as failed:
            return replace(check, roles_read=True, roles_failure=failed.detail)
        return replace(check, roles_read=True, roles=holders)

    async def read_tenant(self, directory: Directory) -> TenantInfo:
        connection = await self.clients.connection(directory)
        answers = await _batch(
            connection,
            {
                "organization": ORGANIZATION,
                "domains": DOMAINS,
                "application": application(directory.client_id),
            },
        )
        return tenant_info(directory.tenant_id, answers)

    async def forget(self, directory_id: str) -> None:
        await self.clients.forget(directory_id)
