"""Microsoft 365 through Graph (the ``M365`` port): one client per directory, reads of users and groups as domain
objects, and writes at the level of intent (``writes``) in ``$batch`` requests (``batch``).

- Reads ``$select`` only the managed properties. A user is matched by UPN, mail or ``smtp:`` proxy address
  (one ``$filter`` with ``or``; Graph compares these case-insensitively) or by the immutable id Warden derives.
  https://learn.microsoft.com/en-us/graph/filter-query-parameter, .../aad-advanced-queries (these operators
  need no advanced query), .../api/user-list
- Every call of a directory passes its throttle gate and resource-unit budget (``graph_throttle``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic_core import from_json as parse_json

from shared.adapters.graph import DirectoryClients, get_json, send
from shared.adapters.graph_throttle import ru_limit
from shared.adapters.m365 import writes as intent
from shared.adapters.m365.batch import BatchCall, BatchResult, Send, run_batches
from shared.domain.group_plan import GroupPlan, M365Group
from shared.domain.model import Directory, Group
from shared.domain.planner import M365Account, PlanItem
from shared.service.ports import Applied, Delta, DeltaExpired, PasswordSource, Written

SELECT = (
    "id,userPrincipalName,accountEnabled,mail,mailNickname,givenName,surname,displayName,jobTitle,department,"
    "employeeId,onPremisesImmutableId,proxyAddresses"
)
DELTA_SELECT = "id,userPrincipalName,accountEnabled,mail,mailNickname,givenName,surname,displayName,jobTitle,department,employeeId,onPremisesImmutableId"
"""Delta tracks only the properties it selects (user-delta): the managed ones."""
GROUP_SELECT = "id,displayName,securityEnabled,mailEnabled,groupTypes"
GROUP_DELTA_SELECT = "displayName,members"
"""Group delta tracking names and membership (``members@delta``): what a mirror manages (group-delta)."""


PAGE_SLICE = 50
"""Accounts handed to ``list_users``' caller at a time. Small: the next page's request, asked for before the caller
gets this page, goes out only after a few turns of the event loop (httpx's checkpoints), each one slice of the
caller's work (a reconcile plans 50 users in about 2 ms)."""


def group_from(body: dict[str, Any]) -> M365Group:
    return M365Group(
        id=str(body["id"]),
        display_name=str(body.get("displayName") or ""),
        security_enabled=bool(body.get("securityEnabled")),
        mail_enabled=bool(body.get("mailEnabled")),
        group_types=tuple(body.get("groupTypes") or ()),
    )


def account_from(body: dict[str, Any]) -> M365Account:
    return M365Account(
        id=str(body["id"]),
        user_principal_name=str(body.get("userPrincipalName") or ""),
        account_enabled=bool(body.get("accountEnabled")),
        mail=body.get("mail"),
        mail_nickname=body.get("mailNickname"),
        given_name=body.get("givenName"),
        surname=body.get("surname"),
        display_name=body.get("displayName"),
        job_title=body.get("jobTitle"),
        department=body.get("department"),
        employee_id=body.get("employeeId"),
        on_premises_immutable_id=body.get("onPremisesImmutableId"),
        proxy_addresses=tuple(body.get("proxyAddresses") or ()),
    )


def odata_string(value: str) -> str:
    """An OData string literal: single quotes doubled (filter-query-parameter, "Escaping single quotes")."""
    return "'" + value.replace("'", "''") + "'"


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "response_status_code", None)
    return status if isinstance(status, int) else None


class GraphM365:
    def __init__(self, clients: DirectoryClients) -> None:
        self.clients = clients

    def usage(self, directory_id: str) -> dict[str, float]:
        gate = self.clients.gate_if_built(directory_id)
        return gate.usage.snapshot() if gate is not None else {}

    def set_tenant_size(self, directory_id: str, users: int) -> None:
        gate = self.clients.gate_if_built(directory_id)
        if gate is not None:
            gate.usage.ru.limit = ru_limit(users)

    async def _read(self, directory: Directory) -> Any:
        """The directory's client, once a read's resource unit fits its budget."""
        client = await self.clients.client_for(directory)
        await self.clients.gate_for(directory.id).usage.ru.take(1)
        return client

    async def get_user(self, directory: Directory, m365_id: str) -> M365Account | None:
        client = await self._read(directory)
        try:
            body = await get_json(client, f"/users/{m365_id}", {"$select": SELECT})
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise
        return account_from(body)

    async def find_users(self, directory: Directory, email: str, immutable_id: str) -> list[M365Account]:
        client = await self._read(directory)
        e = odata_string(email)
        flt = (
            f"userPrincipalName eq {e} or mail eq {e} or proxyAddresses/any(p:p eq {odata_string('smtp:' + email)})"
            f" or onPremisesImmutableId eq {odata_string(immutable_id)}"
        )
        body = await get_json(client, "/users", {"$filter": flt, "$select": SELECT, "$top": "10"})
        return [account_from(v) for v in (body or {}).get("value", [])]

    def _send(self, directory: Directory) -> Send:
        async def send(calls: Sequence[BatchCall]) -> dict[str, BatchResult]:
            client = await self.clients.client_for(directory)
            return await run_batches(client, self.clients.gate_for(directory.id), calls)

        return send

    @property
    def graph_root(self) -> str:
        """Graph's version root, for the absolute references ``$ref`` and ``@odata.bind`` take."""
        return self.clients.endpoint.graph_url

    async def apply(
        self, directory: Directory, items: Sequence[PlanItem], password: PasswordSource
    ) -> list[Applied]:
        return await intent.apply_items(self._send(directory), items, self.graph_root, password)

    async def set_password(self, directory: Directory, m365_user_id: str, password: str) -> Written:
        return await intent.set_password(self._send(directory), m365_user_id, password)

    async def create_group(self, directory: Directory, group: Group) -> Written:
        return await intent.create_group(self._send(directory), group)

    async def change_group(self, directory: Directory, m365_group_id: str, plan: GroupPlan) -> Written:
        return await intent.change_group(self._send(directory), m365_group_id, plan, self.graph_root)

    async def delete_group(self, directory: Directory, m365_group_id: str) -> Written:
        return await intent.delete_group(self._send(directory), m365_group_id)

    async def user_page(
        self, directory: Directory, *, text: str | None, enabled: bool | None, next_link: str | None, top: int
    ) -> tuple[list[M365Account], str | None]:
        client = await self._read(directory)
        if next_link:
            if not next_link.startswith(client.request_adapter.base_url + "/users"):
                raise ValueError("not a users nextLink")
            body = await get_json(client, _relative(client, next_link))
        else:
            clauses = []
            if text:
                t = odata_string(text)
                clauses.append(
                    f"(startsWith(displayName,{t}) or startsWith(userPrincipalName,{t}) or startsWith(mail,{t}))"
                )
            if enabled is not None:
                clauses.append(f"accountEnabled eq {'true' if enabled else 'false'}")
            query = {
                "$select": SELECT,
                "$top": str(top),
                **({"$filter": " and ".join(clauses)} if clauses else {}),
            }
            body = await get_json(client, "/users", query)
        nxt = (body or {}).get("@odata.nextLink")
        return [account_from(v) for v in (body or {}).get("value", [])], str(nxt) if nxt else None

    async def get_group(self, directory: Directory, m365_id: str) -> M365Group | None:
        client = await self._read(directory)
        try:
            body = await get_json(client, f"/groups/{m365_id}", {"$select": GROUP_SELECT})
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise
        return group_from(body)

    async def find_groups(self, directory: Directory, display_name: str) -> list[M365Group]:
        client = await self._read(directory)
        query = {"$filter": f"displayName eq {odata_string(display_name)}", "$select": GROUP_SELECT}
        body = await get_json(client, "/groups", query)
        return [group_from(v) for v in (body or {}).get("value", [])]

    async def group_members(self, directory: Directory, m365_id: str) -> frozenset[str]:
        client = await self._read(directory)
        ids: set[str] = set()
        path = f"/groups/{m365_id}/members"
        query: Mapping[str, str] | None = {"$select": "id", "$top": "999"}
        while True:
            body = await get_json(client, path, query)
            ids.update(str(v["id"]) for v in (body or {}).get("value", []))
            next_link = (body or {}).get("@odata.nextLink")
            if not next_link:
                return frozenset(ids)
            path, query = _relative(client, str(next_link)), None
            await self.clients.gate_for(directory.id).usage.ru.take(3)

    async def list_users(self, directory: Directory) -> AsyncIterator[list[M365Account]]:
        """Every user of the tenant, Graph's pages (≤ 999) handed over in slices of ``PAGE_SLICE``, following
        ``@odata.nextLink`` to the end. A page
        that fails raises: a partial listing is never passed off as the tenant (rule 19). The next page is asked
        for as soon as a page's nextLink is known, so that Graph works on it while the caller reads this one."""
        client = await self._read(directory)
        ru = self.clients.gate_for(directory.id).usage.ru
        pending: asyncio.Future[bytes | None] | None = asyncio.ensure_future(
            send(client, "GET", "/users", query={"$select": SELECT, "$top": "999"})
        )
        try:
            while pending is not None:
                # The next page is asked for once this one is parsed: pydantic-core's parser, three times json's
                # speed on a page of 999 accounts, shortens every link of the chain.
                body = parse_json((await pending) or b"{}")
                pending = None
                next_link = body.get("@odata.nextLink")
                if next_link:
                    await ru.take(1)
                    pending = asyncio.ensure_future(send(client, "GET", _relative(client, str(next_link))))
                values = body.get("value", [])
                for first in range(0, len(values), PAGE_SLICE):
                    # A page in slices, the event loop turning in between (the next page's answer is taken
                    # as soon as it comes, whatever the caller does with these).
                    yield [account_from(v) for v in values[first : first + PAGE_SLICE]]
                    await asyncio.sleep(0)
        finally:
            if pending is not None:  # the caller stopped early: the next page is not wanted
                pending.add_done_callback(_retrieved)
                pending.cancel()

    async def delta(
        self, directory: Directory, delta_link: str | None, *, latest: bool = False, resource: str = "users"
    ) -> Delta:
        """Users changed since ``delta_link`` (every user when None; none, only a new deltaLink, with
        ``latest``), following nextLinks to the new deltaLink. ``DeltaExpired`` when Graph no longer knows the
        token (410 ``syncStateNotFound``)."""
        client = await self._read(directory)
        changed: list[dict[str, Any]] = []
        query: Mapping[str, str] | None
        if delta_link:
            path, query = _relative(client, delta_link), None
        else:
            select = DELTA_SELECT if resource == "users" else GROUP_DELTA_SELECT
            path, query = (
                f"/{resource}/delta",
                {"$select": select, **({"$deltatoken": "latest"} if latest else {})},
            )
        while True:
            try:
                body = await get_json(client, path, query)
            except Exception as exc:
                if _status(exc) == 410:
                    raise DeltaExpired("the delta token expired (syncStateNotFound)") from None
                raise
            changed.extend((body or {}).get("value", []))
            if "@odata.deltaLink" in (body or {}):
                return Delta(changed, str(body["@odata.deltaLink"]))
            path, query = _relative(client, str(body["@odata.nextLink"])), None
            await self.clients.gate_for(directory.id).usage.ru.take(1)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Collect the outcome of a request nobody waits for any more (no "exception never retrieved")."""
    if not future.cancelled():
        future.exception()


def _relative(client: Any, url: str) -> str:
    """A nextLink/deltaLink (absolute) as a path below the client's version root."""
    base = client.request_adapter.base_url
    return url[len(base) :] if url.startswith(base) else url
