"""A tenant's own settings through Graph (the ``M365Tenant`` port): domains, their federation and password policy,
the organization's on-premises sync flag, and the role holders. The only code that knows these Graph paths.

- domains: ``GET /domains``, ``PATCH /domains/{id}`` (``authenticationType``, ``passwordValidityPeriodInDays``;
  204) - graph/api/domain-list, domain-update;
- federation: ``GET|POST /domains/{id}/federationConfiguration``, ``PATCH|DELETE …/{fedId}`` (201 / 200 / 204) -
  graph/api/domain-list-federationconfiguration, domain-post-federationconfiguration,
  internaldomainfederation-update, internaldomainfederation-delete. A POST is never sent without a signing
  certificate (one without has answered 500 and left the domain unmanageable: microsoft-graph-docs issue 20203);
- accounts of a domain: ``GET /users?$filter=endsWith(userPrincipalName,'@domain')`` as an advanced query
  (``ConsistencyLevel: eventual``, ``$count=true``; graph/aad-advanced-queries);
- role holders: ``GET /roleManagement/directory/roleAssignments?$expand=principal`` and
  ``…/roleEligibilityScheduleInstances?$expand=principal`` (``RoleManagement.Read.Directory``; a 403 means the
  app may not read them), the role names from ``…/roleDefinitions``, and the members of each role-assignable group
  holding a role (``GET /groups/{id}/members``; such groups cannot contain groups) - graph/api/
  rbacapplication-list-roleassignments, rbacapplication-list-roleeligibilityscheduleinstances;
- ``GET /organization?$select=id,onPremisesSyncEnabled`` - graph/api/organization-get.

Reads follow every ``@odata.nextLink`` and raise ``Upstream`` for an answer they cannot use; writes answer an outcome
(``shared.adapters.m365.outcomes``): Graph's refusal is ``failed`` with its message, no answer at all is ``retry``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from shared.adapters.graph import DirectoryClients, send_json
from shared.adapters.m365.batch import BatchResult
from shared.adapters.m365.client import odata_string
from shared.adapters.m365.outcomes import detail_of, outcome_of
from shared.adapters.saml import certificate_of
from shared.domain.errors import Upstream
from shared.domain.federation import DomainAccount, Federation, FederationSettings, TenantDomain
from shared.domain.model import Directory
from shared.domain.protection import GLOBAL_ADMINISTRATOR, RoleGrant, RoleHolders
from shared.service.ports import Written

DOMAIN_SELECT = "id,isVerified,isDefault,isInitial,authenticationType,passwordValidityPeriodInDays"
ACCOUNT_SELECT = "id,userPrincipalName,onPremisesImmutableId,accountEnabled"
USER = "#microsoft.graph.user"
GROUP = "#microsoft.graph.group"
MAX_PAGES = 1000
"""A listing that has not ended after this many pages is refused rather than trusted (``$top=999``: a million)."""
ROLES = "/roleManagement/directory"
ROLE_READS = {
    "roleDefinitions": f"{ROLES}/roleDefinitions",
    "roleAssignments": f"{ROLES}/roleAssignments?$expand=principal",
    "roleEligibilities": f"{ROLES}/roleEligibilityScheduleInstances?$expand=principal",
}
"""The reads of a tenant's role holders (graph/api/rbacapplication-list-roleassignments,
rbacapplication-list-roleeligibilityscheduleinstances): the definitions' names, active assignments, eligibilities
(PIM), each principal expanded. Their first pages fit in the token refresh round's ``$batch``."""


class Denied(Exception):
    """Graph answered 403: the app lacks a permission for this read."""


class Missing(Exception):
    """Graph answered 404: no such object."""


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "response_status_code", None)
    return status if isinstance(status, int) else None


def answer_of(exc: BaseException) -> BatchResult:
    """Graph's refusal (msgraph-sdk's ``ODataError``) as the answer shape the outcomes are read from."""
    error = getattr(exc, "error", None)
    body = {"error": {"code": getattr(error, "code", None), "message": getattr(error, "message", None)}}
    return BatchResult("call", _status(exc) or 0, body, {})


def domain_from(body: Mapping[str, Any]) -> TenantDomain:
    validity = body.get("passwordValidityPeriodInDays")
    return TenantDomain(
        name=str(body["id"]).lower(),
        is_verified=bool(body.get("isVerified")),
        is_default=bool(body.get("isDefault")),
        is_initial=bool(body.get("isInitial")),
        authentication_type=str(body.get("authenticationType") or "Managed"),
        password_validity_days=validity if isinstance(validity, int) else None,
    )


def account_from(body: Mapping[str, Any]) -> DomainAccount:
    return DomainAccount(
        id=str(body["id"]),
        user_principal_name=str(body.get("userPrincipalName") or ""),
        on_premises_immutable_id=body.get("onPremisesImmutableId") or None,
        account_enabled=bool(body.get("accountEnabled")),
    )


def federation_from(body: Mapping[str, Any]) -> Federation:
    def cert(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return None
        try:
            return certificate_of(value)
        except ValueError:
            return None

    return Federation(
        id=str(body["id"]),
        settings=FederationSettings.from_document(body),
        signing=cert(body.get("signingCertificate")),
        next_signing=cert(body.get("nextSigningCertificate")),
    )


def _path(domain: str) -> str:
    return f"/domains/{quote(domain, safe='')}"


class GraphTenant:
    def __init__(self, clients: DirectoryClients) -> None:
        self.clients = clients

    async def _client(self, directory: Directory, units: int = 1) -> Any:
        client = await self.clients.client_for(directory)
        await self.clients.gate_for(directory.id).usage.ru.take(units)
        return client

    async def _get(
        self,
        directory: Directory,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> Any:
        """The JSON answer; ``Denied`` (403) and ``Missing`` (404) when ``allow``ed, ``Upstream`` for any other
        failure."""
        client = await self._client(directory)
        try:
            return await send_json(client, "GET", path, query=query, headers=headers)
        except httpx.HTTPError as exc:
            raise Upstream(f"Graph did not answer GET {path} ({type(exc).__name__})") from None
        except Exception as exc:
            status = _status(exc)
            if status is None:
                raise
            if status == 403 and 403 in allow:
                raise Denied(path) from None
            if status == 404 and 404 in allow:
                raise Missing(path) from None
            raise Upstream(f"Graph answered GET {path} with {detail_of(answer_of(exc))}") from None

    async def _all(
        self,
        directory: Directory,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
        first: Any = None,
    ) -> list[dict[str, Any]]:
        """Every item of a collection, following each nextLink (a listing that does not end is refused).
        ``first``: its first page, answered already (inside a ``$batch``)."""
        out: list[dict[str, Any]] = []
        body = first if first is not None else await self._get(directory, path, query, headers, allow)
        for _ in range(MAX_PAGES):
            out.extend((body or {}).get("value", []))
            next_link = (body or {}).get("@odata.nextLink")
            if not next_link:
                return out
            base = self.clients.endpoint.graph_url
            relative = str(next_link)[len(base) :] if str(next_link).startswith(base) else str(next_link)
            body = await self._get(directory, relative, None, headers, allow)
        raise Upstream(f"Graph's listing of {path} did not end after {MAX_PAGES} pages")

    async def _rest(
        self, directory: Directory, name: str, answer: tuple[int, Any] | None
    ) -> list[dict[str, Any]]:
        """A listing whose first page came inside a ``$batch``: its items, following each nextLink."""
        path = ROLE_READS[name]
        if answer is None:
            raise Upstream(f"Graph's $batch did not answer GET {path}")
        status, body = answer
        if status == 403:
            raise Denied(path)
        if status != 200:
            result = BatchResult(name, status, body if isinstance(body, dict) else {}, {})
            raise Upstream(f"Graph answered GET {path} with {detail_of(result)}")
        return await self._all(directory, path, allow=(403,), first=body or {})

    async def _write(self, directory: Directory, method: str, path: str, body: Any = None) -> Written:
        client = await self._client(directory)
        await self.clients.gate_for(directory.id).usage.write.take(1)
        try:
            answer = await send_json(client, method, path, body=body)
        except httpx.HTTPError as exc:
            return Written("retry", f"no answer from Graph ({type(exc).__name__})", 1)
        except Exception as exc:
            if _status(exc) is None:
                raise
            refused = answer_of(exc)
            return Written(outcome_of(refused), detail_of(refused), 1)
        made = answer.get("id") if isinstance(answer, dict) else None
        return Written("applied", None, 1, str(made) if made else None)

    # ------------------------------------------------------------------------------------------- reads
    async def on_premises_sync(self, directory: Directory) -> bool | None:
        body = await self._get(directory, "/organization", {"$select": "id,onPremisesSyncEnabled"})
        value = (body or {}).get("value") or []
        if not value:
            raise Upstream("Graph answered /organization without the tenant")
        flag = value[0].get("onPremisesSyncEnabled")
        return flag if isinstance(flag, bool) else None

    async def domains(self, directory: Directory) -> list[TenantDomain]:
        try:
            found = await self._all(directory, "/domains", {"$select": DOMAIN_SELECT}, allow=(403,))
        except Denied:
            raise Upstream("the app may not read the tenant's domains (Domain.Read.All)") from None
        return [domain_from(d) for d in found]

    async def federation(self, directory: Directory, domain: str) -> Federation | None:
        try:
            found = await self._all(directory, f"{_path(domain)}/federationConfiguration", allow=(403, 404))
        except Missing:
            raise Upstream(f"the tenant has no domain {domain}") from None
        except Denied:
            raise Upstream(
                "the app may not read the domain's federation (Domain-InternalFederation.ReadWrite.All)"
            ) from None
        return federation_from(found[0]) if found else None

    async def domain_accounts(self, directory: Directory, domain: str) -> list[DomainAccount]:
        flt = f"endsWith(userPrincipalName,{odata_string('@' + domain)})"
        query = {"$filter": flt, "$select": ACCOUNT_SELECT, "$count": "true", "$top": "999"}
        found = await self._all(directory, "/users", query, {"ConsistencyLevel": "eventual"})
        suffix = "@" + domain.lower()
        return [
            account_from(a) for a in found if str(a.get("userPrincipalName", "")).lower().endswith(suffix)
        ]

    async def accounts(self, directory: Directory, ids: Sequence[str]) -> list[DomainAccount]:
        out = []
        for m365_id in dict.fromkeys(ids):
            try:
                path = f"/users/{quote(m365_id, safe='')}"
                body = await self._get(directory, path, {"$select": ACCOUNT_SELECT}, allow=(404,))
            except Missing:
                continue
            out.append(account_from(body))
        return out

    async def role_holders(
        self, directory: Directory, first: Mapping[str, tuple[int, Any]] | None = None
    ) -> RoleHolders | None:
        """Every holder of a directory role (None: the app may not read them, RoleManagement.Read.Directory).
        ``first``: the first page of each of ``ROLE_READS``, as answered inside a ``$batch`` already sent (the token
        refresh round's); the rest of each listing, and a role-assignable group's members, are read here."""
        try:
            if first is None:
                expand = {"$expand": "principal"}
                definitions = await self._all(directory, f"{ROLES}/roleDefinitions", allow=(403,))
                active = await self._all(directory, f"{ROLES}/roleAssignments", expand, allow=(403,))
                eligible = await self._all(
                    directory, f"{ROLES}/roleEligibilityScheduleInstances", expand, allow=(403,)
                )
            else:
                definitions, active, eligible = [
                    await self._rest(directory, name, first.get(name)) for name in ROLE_READS
                ]
        except Denied:
            return None
        names = {str(d["id"]): str(d.get("displayName") or d["id"]) for d in definitions}
        grants: dict[str, list[RoleGrant]] = {}
        admins: set[str] = set()
        upns: dict[str, str] = {}
        by_group: dict[str, list[tuple[str, bool]]] = {}
        group_names: dict[str, str] = {}
        for record, is_eligible in [*((a, False) for a in active), *((e, True) for e in eligible)]:
            principal = record.get("principal") or {}
            kind, pid = (
                principal.get("@odata.type"),
                str(record.get("principalId") or principal.get("id") or ""),
            )
            role = str(record.get("roleDefinitionId") or "")
            if not pid or not role:
                continue
            if kind == USER:
                grants.setdefault(pid, []).append(RoleGrant(role, names.get(role, role), is_eligible))
                if principal.get("userPrincipalName"):
                    upns[pid] = str(principal["userPrincipalName"])
                if role == GLOBAL_ADMINISTRATOR and not is_eligible:
                    admins.add(pid)
            elif kind == GROUP:
                by_group.setdefault(pid, []).append((role, is_eligible))
                group_names[pid] = str(principal.get("displayName") or pid)
        for group_id, roles in by_group.items():
            try:
                members = await self._all(
                    directory,
                    f"/groups/{group_id}/members",
                    {"$select": "id,userPrincipalName"},
                    allow=(403,),
                )
            except Denied:
                return (
                    None  # a role-assignable group's members cannot be read: nobody can be shown unprotected
                )
            for m in members:
                if m.get("@odata.type", USER) != USER or not m.get("id"):
                    continue
                if m.get("userPrincipalName"):
                    upns[str(m["id"])] = str(m["userPrincipalName"])
                for role, is_eligible in roles:
                    grants.setdefault(str(m["id"]), []).append(
                        RoleGrant(role, names.get(role, role), is_eligible, group_names[group_id])
                    )
                    if role == GLOBAL_ADMINISTRATOR and not is_eligible:
                        admins.add(str(m["id"]))
        return RoleHolders({k: tuple(v) for k, v in grants.items()}, frozenset(admins), upns)

    # ------------------------------------------------------------------------------------------ writes
    async def create_federation(
        self, directory: Directory, domain: str, settings: FederationSettings
    ) -> Written:
        body = {k: v for k, v in settings.document().items() if v is not None}
        if not body.get("signingCertificate"):
            raise ValueError("a federation is never created without its signing certificate")
        return await self._write(directory, "POST", f"{_path(domain)}/federationConfiguration", body)

    async def update_federation(
        self, directory: Directory, domain: str, federation_id: str, settings: FederationSettings
    ) -> Written:
        body = settings.document()
        if not body.get("signingCertificate"):
            raise ValueError("a federation never loses its signing certificate")
        path = f"{_path(domain)}/federationConfiguration/{quote(federation_id, safe='')}"
        return await self._write(directory, "PATCH", path, body)

    async def delete_federation(self, directory: Directory, domain: str, federation_id: str) -> Written:
        path = f"{_path(domain)}/federationConfiguration/{quote(federation_id, safe='')}"
        written = await self._write(directory, "DELETE", path)
        if written.outcome == "rematch":  # gone already: deleted
            return Written("applied", None, written.writes)
        return written

    async def set_authentication(self, directory: Directory, domain: str, kind: str) -> Written:
        return await self._write(directory, "PATCH", _path(domain), {"authenticationType": kind})

    async def set_password_validity(self, directory: Directory, domain: str, days: int) -> Written:
        return await self._write(directory, "PATCH", _path(domain), {"passwordValidityPeriodInDays": days})
