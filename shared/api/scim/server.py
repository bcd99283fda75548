"""The SCIM 2.0 protocol (RFC 7644) over a source's users and groups: routing below ``/scim/v2``, discovery,
queries (filters, paging, attribute selection, ``/.search``), POST, PUT, PATCH, DELETE, ETags (§3.14), Bulk (§3.7)
and SCIM error bodies (§3.12), all as ``application/scim+json``.

Every write goes to ``shared.service.hr.scim.Scim`` (the store operations HR events use); this module only says
what a SCIM request means and what to answer.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    InvalidFilterException,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    NotImplementedException,
    PatchOp,
    PreconditionFailedException,
    ResponseParameters,
    SCIMException,
    SearchRequest,
)
from scim2_models.path import Comparison, LogicalExpr, LogicalOperator

from shared.api.scim import models as m
from shared.api.scim.answers import Response, domain_error, error_response, problem, validation_error
from shared.api.scim.bulk import run_bulk
from shared.api.scim.mapping import (
    manager_value,
    render_group,
    render_user,
    wanted_group,
    wanted_user,
)
from shared.domain.errors import (
    DomainError,
)
from shared.domain.sources import HrSource, SourceRef
from shared.service.context import Actor
from shared.service.hr.scim import Scim, Sourced, SourcedGroup, WantedGroup, WantedUser

SCIM_JSON = "application/scim+json"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DISCOVERY_METHODS = "GET"
QUERY_PARAMETERS = frozenset(
    {"filter", "startIndex", "count", "attributes", "excludedAttributes", "sortBy", "sortOrder"}
)
CLIENT_FLAGS = frozenset({"aadOptscim062020"})
"""Query flags a client adds to every request for itself: Microsoft Entra's provisioning opts into its fixed SCIM
behaviour with ``?aadOptscim062020`` on the tenant URL (learn.microsoft.com/entra/identity/app-provisioning/
application-provisioning-config-problem-scim-compatibility). They mean nothing to the server."""


def _matches(header: str | None, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names ``etag`` (weak comparison, as RFC 7232 §3.2 for GET)."""
    if header is None:
        return False
    values = [v.strip() for v in header.split(",")]
    return "*" in values or any(v.removeprefix("W/") == etag.removeprefix("W/") for v in values)


class ScimServer:
    """One source's SCIM service. ``base`` is the absolute URL of ``/scim/v2`` as the client called it."""

    def __init__(self, scim: Scim, source: HrSource, base: str, actor: Actor) -> None:
        self.scim = scim
        self.source = source
        self.ref = SourceRef(source.id, source.actor)
        self.base = base.rstrip("/")
        self.actor = actor
        self.mapping = source.mapping
        self.provider = m.provider(source.mapping)
        self.users: Any = m.user_model(source.mapping)
        self.groups: Any = m.group_model(source.mapping)

    # ---------------------------------------------------------------------------------------- dispatch
    async def handle(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> Response:
        try:
            return await self._route(method.upper(), [p for p in path.split("/") if p], query, headers, body)
        except SCIMException as exc:
            return error_response(exc)
        except ValidationError as exc:
            return error_response(validation_error(exc))
        except DomainError as exc:
            return error_response(domain_error(exc))

    async def _route(
        self, method: str, parts: list[str], query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not parts:
            return problem(404, "no SCIM endpoint here: see /ServiceProviderConfig")
        head, rest = parts[0], parts[1:]
        if head == ".search" and not rest:
            return self._only(method, "POST") or await self._search(self._json(body), root=True)
        if head in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
            return self._only(method, _DISCOVERY_METHODS) or self._discovery(head, rest)
        if head == "Bulk" and not rest:
            return self._only(method, "POST") or await self._bulk(body)
        if head == "Me":
            raise NotImplementedException(detail="/Me is not supported: a source's token belongs to no user")
        if head not in ("Users", "Groups") or len(rest) > 1:
            return problem(404, f"no SCIM endpoint /{'/'.join(parts)[:128]}")
        users = head == "Users"
        if not rest:
            if method == "GET":
                return await self._query(users, query)
            if method == "POST":
                return await self._create(users, self._json(body))
            return self._not_allowed("GET, POST")
        if rest[0] == ".search":
            return self._only(method, "POST") or await self._search(self._json(body), users=users)
        object_id = rest[0]
        if not _GUID.match(object_id):
            raise NotFoundException(detail=f"no {'user' if users else 'group'} with id '{object_id[:64]}'")
        object_id = object_id.lower()
        if method == "GET":
            return await self._get(users, object_id, query, headers)
        if method == "PUT":
            return await self._put(users, object_id, self._json(body), headers.get("if-match"))
        if method == "PATCH":
            return await self._patch(users, object_id, self._json(body), headers.get("if-match"))
        if method == "DELETE":
            return await self._delete(users, object_id, headers.get("if-match"))
        return self._not_allowed("GET, PUT, PATCH, DELETE")

    @staticmethod
    def _not_allowed(allowed: str) -> Response:
        response = problem(405, f"this endpoint answers {allowed}")
        response.headers["Allow"] = allowed
        return response

    def _only(self, method: str, allowed: str) -> Response | None:
        return None if method == allowed else self._not_allowed(allowed)

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except (UnicodeDecodeError, ValueError):
            raise InvalidSyntaxException(detail="the body is not valid JSON") from None

    # ------------------------------------------------------------------------------------------- discovery
    def _discovery(self, head: str, rest: list[str]) -> Response:
        if head == "ServiceProviderConfig":
            if rest:
                raise NotFoundException(detail="ServiceProviderConfig has no sub-resources")
            spc = m.config(self.base)
            spc.meta = self._meta_of("ServiceProviderConfig", f"{self.base}/ServiceProviderConfig")
            return Response(200, spc.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        if head == "ResourceTypes":
            types = [
                t.model_copy(
                    update={"meta": self._meta_of("ResourceType", f"{self.base}/ResourceTypes/{t.id}")}
                )
                for t in m.resource_types()
            ]
            return self._listed(types, rest, "ResourceType", lambda t: str(t.id))
        schemas = [
            sc.model_copy(update={"meta": self._meta_of("Schema", f"{self.base}/Schemas/{sc.id}")})
            for sc in self.provider.schemas
        ]
        return self._listed(schemas, rest, "Schema", lambda sc: str(sc.id))

    def _listed(self, items: list[Any], rest: list[str], what: str, key: Callable[[Any], str]) -> Response:
        if rest:
            wanted = "/".join(rest)
            found = [i for i in items if key(i) == wanted]
            if not found:
                raise NotFoundException(detail=f"no {what} '{wanted[:200]}'")
            return Response(200, found[0].model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        generic: Any = ListResponse
        listed: Any = generic[type(items[0])](
            total_results=len(items), start_index=1, items_per_page=len(items), resources=items
        )
        return Response(200, listed.model_dump(scim_ctx=Context.SEARCH_RESPONSE))

    @staticmethod
    def _meta_of(kind: str, location: str) -> Any:
        from scim2_models import Meta

        return Meta(resource_type=kind, location=location)

    # --------------------------------------------------------------------------------------------- reading
    def _model(self, users: bool) -> Any:
        return self.users if users else self.groups

    async def _render_user(self, sourced: Sourced) -> Any:
        return render_user(sourced, self.mapping, self.users, self.base)

    async def _render_group(self, sg: SourcedGroup) -> Any:
        return render_group(sg, self.groups, self.base)

    async def _load(self, users: bool, object_id: str) -> Any:
        if users:
            return await self._render_user(await self.scim.user(self.ref, object_id))
        return await self._render_group(await self.scim.group(self.ref, object_id))

    def _parameters(self, model: Any, query: Mapping[str, str]) -> Any:
        raw = {k: query[k] for k in ("attributes", "excludedAttributes") if query.get(k)}
        return ResponseParameters[model].model_validate(raw) if raw else None

    def _dump(self, resource: Any, context: Context, parameters: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = resource.model_dump(scim_ctx=context, response_parameters=parameters)
        return body

    def _one(
        self, resource: Any, status: int = 200, parameters: Any = None, *, located: bool = False
    ) -> Response:
        context = {200: Context.RESOURCE_QUERY_RESPONSE, 201: Context.RESOURCE_CREATION_RESPONSE}[status]
        headers = {"ETag": resource.meta.version}
        if located:
            headers["Location"] = resource.meta.location
        return Response(status, self._dump(resource, context, parameters), headers)

    async def _get(
        self, users: bool, object_id: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response:
        resource = await self._load(users, object_id)
        if _matches(headers.get("if-none-match"), resource.meta.version):
            return Response(304, None, {"ETag": resource.meta.version})
        return self._one(resource, 200, self._parameters(self._model(users), query))

    async def _query(self, users: bool, query: Mapping[str, str]) -> Response:
        unknown = sorted(set(query) - QUERY_PARAMETERS - CLIENT_FLAGS)
        if unknown:
            raise InvalidValueException(detail=f"unknown query parameter {unknown[0]!r}")
        raw: dict[str, Any] = {k: v for k, v in query.items() if v != ""}
        for name in ("startIndex", "count"):
            if name in raw:
                try:
                    raw[name] = int(raw[name])
                except ValueError:
                    raise InvalidValueException(detail=f"{name} must be an integer") from None
        return await self._search(raw, users=users, from_query=True)

    async def _search(
        self, body: Any, *, users: bool = True, root: bool = False, from_query: bool = False
    ) -> Response:
        if not isinstance(body, dict):
            raise InvalidSyntaxException(detail="a search request is a JSON object")
        model: Any = (self.users | self.groups) if root else self._model(users)
        data = dict(body)
        if not from_query:
            schemas = data.get("schemas")
            if (
                not isinstance(schemas, list)
                or "urn:ietf:params:scim:api:messages:2.0:SearchRequest" not in schemas
            ):
                raise InvalidSyntaxException(
                    detail="schemas must name urn:ietf:params:scim:api:messages:2.0:SearchRequest"
                )
        else:
            data["schemas"] = ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]
        if data.get("sortBy") or data.get("sortOrder"):
            raise InvalidValueException(
                detail="sorting is not supported (ServiceProviderConfig sort.supported: false)"
            )
        try:
            request: Any = SearchRequest[model].model_validate(data, scim_ctx=Context.SEARCH_REQUEST)
        except ValidationError as exc:
            err = validation_error(exc)
            if "filter" in str(exc):
                raise InvalidFilterException(detail=err.detail) from None
            raise err from None
        start = max(request.start_index or 1, 1)
        count = min(max(request.count if request.count is not None else m.DEFAULT_COUNT, 0), m.MAX_RESULTS)
        kinds = [True, False] if root else [users]
        if request.filter is None:
            found, total = await self._page(kinds, start - 1, count)
        else:
            matched = await self._filtered(kinds, request.filter)
            found, total = matched[start - 1 : start - 1 + count], len(matched)
        listed: Any = ListResponse[model](
            total_results=total, start_index=start, items_per_page=len(found), resources=found
        )
        return Response(200, listed.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=request))

    async def _page(self, kinds: list[bool], skip: int, count: int) -> tuple[list[Any], int]:
        found: list[Any] = []
        total = 0
        for users in kinds:
            if users:
                page, n = await self.scim.users_page(self.ref, max(skip - total, 0), count - len(found))
                found += [await self._render_user(u) for u in page]
            else:
                groups, n = await self.scim.groups_page(self.ref, max(skip - total, 0), count - len(found))
                found += [await self._render_group(g) for g in groups]
            total += n
        return found, total

    async def _filtered(self, kinds: list[bool], flt: Any) -> list[Any]:
        """Resources matching ``flt``: looked up by index when the filter is (or is and-ed with) an ``eq`` on an
        identifier Warden indexes, else every resource of the source read and matched."""
        out: list[Any] = []
        for users in kinds:
            lookup = _indexed(flt.ast, users, self.mapping)
            candidates: list[Any]
            if lookup is not None:
                attribute: Any = lookup[0]
                if users:
                    found_users = await self.scim.find_users(self.ref, attribute, lookup[1])
                    candidates = [await self._render_user(u) for u in found_users]
                else:
                    found_groups = await self.scim.find_groups(self.ref, attribute, lookup[1])
                    candidates = [await self._render_group(g) for g in found_groups]
            else:
                candidates = []
                if users:
                    async for people in self.scim.all_users(self.ref):
                        candidates += [await self._render_user(u) for u in people]
                else:
                    async for groups in self.scim.all_groups(self.ref):
                        candidates += [await self._render_group(g) for g in groups]
            out += [c for c in candidates if flt.match(c)]
        return out

    # --------------------------------------------------------------------------------------------- writing
    def _validate(self, users: bool, data: Any, context: Context) -> Any:
        if not isinstance(data, dict):
            raise InvalidSyntaxException(detail="a resource is a JSON object")
        return self._model(users).model_validate(
            _entra_quirks(data, self.base), scim_ctx=context, scim_provider=self.provider
        )

    async def _wanted_user(self, resource: Any) -> WantedUser:
        given, value = manager_value(resource)
        manager_id = await self._manager(value) if given and value is not None else None
        return wanted_user(resource, self.mapping, self.users, manager_id)

    async def _manager(self, value: str) -> str:
        """A manager's ``value``: a user of this source by SCIM id, else by its externalId (as Entra's
        ``/bulkUpload`` scripts send the manager's employee id)."""
        if _GUID.match(value) and await self.scim.find_users(self.ref, "id", value):
            return value.lower()
        found = await self.scim.find_users(self.ref, "externalId", value)
        if found:
            return found[0].id
        raise InvalidValueException(
            detail=f"manager.value: no user of this source with id or externalId '{value[:64]}'"
        )

    async def _create(self, users: bool, data: Any, *, upsert: bool = False) -> Response:
        resource = self._validate(users, data, Context.RESOURCE_CREATION_REQUEST)
        if users:
            sourced, created = await self.scim.create_user(
                self.ref, await self._wanted_user(resource), self.actor, upsert=upsert
            )
            rendered = await self._render_user(sourced)
        else:
            rendered = await self._render_group(
                await self.scim.create_group(self.ref, wanted_group(resource), self.actor)
            )
            created = True
        return self._one(rendered, 201 if created else 200, located=True)

    def _precondition(self, users: bool, if_match: str | None) -> Callable[[Any], None]:
        def check(current: Any) -> None:
            if if_match is None:
                return
            rendered = (
                render_user(current, self.mapping, self.users, self.base)
                if users
                else render_group(current, self.groups, self.base)
            )
            if not _matches(if_match, rendered.meta.version):
                raise PreconditionFailedException(
                    detail=f"the resource changed since it was read: its version is {rendered.meta.version}"
                )

        return check

    async def _put(self, users: bool, object_id: str, data: Any, if_match: str | None) -> Response:
        replacement = self._validate(users, data, Context.RESOURCE_REPLACEMENT_REQUEST)
        return await self._change(users, object_id, if_match, lambda current: _replaced(replacement, current))

    async def _patch(self, users: bool, object_id: str, data: Any, if_match: str | None) -> Response:
        if not isinstance(data, dict):
            raise InvalidSyntaxException(detail="a PATCH body is a PatchOp JSON object")
        model = self._model(users)
        patch_type: Any = PatchOp
        patch: Any = patch_type[model].model_validate(
            _entra_patch_quirks(data, self.base),
            scim_ctx=Context.RESOURCE_PATCH_REQUEST,
            scim_provider=self.provider,
        )

        def patched(current: Any) -> Any:
            resource = copy.deepcopy(current)
            patch.patch(resource, scim_policy=m.POLICY)
            return resource

        return await self._change(users, object_id, if_match, patched)

    async def _change(
        self, users: bool, object_id: str, if_match: str | None, change: Callable[[Any], Any]
    ) -> Response:
        """Apply ``change`` (the rendered current resource → the wanted one) through the use case, which re-reads
        and re-applies it if the user or group moves meanwhile."""
        precondition = self._precondition(users, if_match)
        if users:
            wanted_by: dict[str, WantedUser] = {}

            async def compute_user(current: Sourced) -> WantedUser:
                resource = change(render_user(current, self.mapping, self.users, self.base))
                wanted_by["w"] = await self._wanted_user(resource)
                return wanted_by["w"]

            sourced = await self.scim.change_user(self.ref, object_id, compute_user, precondition, self.actor)
            return self._one(await self._render_user(sourced))

        def compute_group(current: SourcedGroup) -> WantedGroup:
            return wanted_group(change(render_group(current, self.groups, self.base)))

        sg = await self.scim.change_group(self.ref, object_id, compute_group, precondition, self.actor)
        return self._one(await self._render_group(sg))

    async def _delete(self, users: bool, object_id: str, if_match: str | None) -> Response:
        precondition = self._precondition(users, if_match)
        if users:
            await self.scim.delete_user(self.ref, object_id, precondition, self.actor)
        else:
            await self.scim.delete_group(self.ref, object_id, precondition, self.actor)
        return Response(204)

    # ------------------------------------------------------------------------------------------------ bulk
    async def _bulk(self, body: bytes) -> Response:
        if len(body) > m.MAX_PAYLOAD:
            from scim2_models import PayloadTooLargeException

            raise PayloadTooLargeException(detail=f"a Bulk request carries at most {m.MAX_PAYLOAD} bytes")
        return await run_bulk(self.execute, self._json(body))

    async def execute(
        self, method: str, path: str, data: Any, version: str | None, *, upsert: bool
    ) -> Response:
        """One Bulk operation, as the same request on its own would be answered."""
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in ("Users", "Groups") or len(parts) > 2:
            raise InvalidValueException(detail=f"path '{path[:128]}' names no resource of this service")
        users = parts[0] == "Users"
        if method == "POST":
            if len(parts) != 1:
                raise InvalidValueException(detail="a POST goes to /Users or /Groups")
            return await self._create(users, data, upsert=upsert)
        if len(parts) != 2 or not _GUID.match(parts[1]):
            raise NotFoundException(detail=f"no resource at '{path[:128]}'")
        object_id = parts[1].lower()
        if method == "PUT":
            return await self._put(users, object_id, data, version)
        if method == "PATCH":
            return await self._patch(users, object_id, data, version)
        if method == "DELETE":
            return await self._delete(users, object_id, version)
        raise InvalidValueException(
            detail=f"method '{method}' is not a Bulk operation (POST, PUT, PATCH, DELETE)"
        )


def _replaced(replacement: Any, current: Any) -> Any:
    """RFC 7644 §3.5.1: read-only attributes come from the current resource, immutable ones must not change,
    a write-only one left out stays (scim2-models' ``Resource.replace``)."""
    resource = copy.deepcopy(replacement)
    resource.replace(current)
    return resource


def _indexed(ast: Any, users: bool, mapping: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """``(attribute, value)`` of an ``eq`` on an identifier Warden indexes, alone or and-ed with other terms."""
    if isinstance(ast, LogicalExpr) and ast.op == LogicalOperator.and_:
        for term in ast.terms:
            found = _indexed(term, users, mapping)
            if found is not None:
                return found
        return None
    if not isinstance(ast, Comparison) or str(ast.op) != "eq" or not isinstance(ast.value, str):
        return None
    name = (
        str(ast.attr_path)
        .lower()
        .removeprefix(m.USER_SCHEMA.lower() + ":")
        .removeprefix(m.GROUP_SCHEMA.lower() + ":")
    )
    if name == "id":
        return ("id", ast.value)
    if name == "externalid":
        return ("externalId", ast.value)
    if not users:
        return ("displayName", ast.value) if name == "displayname" else None
    targets = {path.lower(): target for path, target in mapping}
    if name == "username":
        return (targets.get("username", "username"), ast.value)
    if name in ("emails", "emails.value") and targets.get("emails.value") == "email":
        return ("email", ast.value)
    target = targets.get(name)
    if target in ("email", "employeeId", "username"):
        return (target, ast.value)
    return None


def _entra_quirks(data: dict[str, Any], base: str) -> dict[str, Any]:
    """What Microsoft Entra and its inbound-provisioning scripts send that RFC 7643 phrases otherwise: an
    enterprise ``manager`` without ``$ref`` (or as a bare string) — the reference is Warden's own location of it."""
    ext = data.get(m.ENTERPRISE)
    if isinstance(ext, dict) and "manager" in ext:
        ext = dict(ext)
        ext["manager"] = _manager_object(ext["manager"], base)
        data = {**data, m.ENTERPRISE: ext}
    return data


def _manager_object(manager: Any, base: str) -> Any:
    if isinstance(manager, str):
        manager = {"value": manager}
    if isinstance(manager, dict) and manager.get("value") and not manager.get("$ref"):
        manager = {**manager, "$ref": f"{base}/Users/{manager['value']}"}
    return manager


def _entra_patch_quirks(data: dict[str, Any], base: str) -> dict[str, Any]:
    operations = data.get("Operations")
    if not isinstance(operations, list):
        return data
    fixed = []
    for op in operations:
        if (
            isinstance(op, dict)
            and isinstance(op.get("path"), str)
            and op["path"].lower() == f"{m.ENTERPRISE}:manager".lower()
        ):
            op = (
                {**op, "value": _manager_object(op.get("value"), base)} if op.get("value") is not None else op
            )
        elif isinstance(op, dict) and isinstance(op.get("value"), dict) and m.ENTERPRISE in op["value"]:
            op = {**op, "value": _entra_quirks(op["value"], base)}
        fixed.append(op)
    return {**data, "Operations": fixed}


Handler = Callable[[], Awaitable[Response]]
