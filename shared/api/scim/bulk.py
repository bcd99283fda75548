"""SCIM Bulk (RFC 7644 §3.7), in the shape Microsoft Entra's inbound provisioning ``/bulkUpload`` accepts, so
scripts written for it (CSV-to-SCIM, Logic Apps, Workday and SuccessFactors connectors) work against Warden.

- Each operation is answered as the same request on its own would be (same checks, same store operations), with
  its status, location and version; one failing never stops the others, until ``failOnErrors`` of them failed.
- ``bulkId``: a POST names what it creates; any ``"bulkId:<id>"`` value in a later (or earlier) operation's path
  or data — a manager, a group member — is that resource's id once created. An operation whose references never
  resolve (a circular reference, or a POST that failed) answers 409.
- A POST to ``/Users`` for someone the source already provisioned (same externalId, or same email) updates them,
  as ``/bulkUpload`` does ("the provisioning service determines the right operation").
- Operations that do not depend on each other run a few at a time; those touching the same resource, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Error,
    InvalidSyntaxException,
    PayloadTooLargeException,
    SCIMException,
)

from shared.api.scim import models as m
from shared.api.scim.answers import Response, domain_error, validation_error
from shared.domain.errors import DomainError

Execute = Callable[..., Awaitable[Response]]
"""``execute(method, path, data, version, upsert=True)``: one operation, answered as on its own."""

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
PREFIX = "bulkId:"
CONCURRENCY = 8
METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Operation:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any
    needs: set[str] = field(default_factory=set)

    @property
    def target(self) -> str:
        return self.path if self.method != "POST" else f"new:{self.index}"


def _references(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value[len(PREFIX) :]} if value.startswith(PREFIX) else set()
    if isinstance(value, dict):
        return set().union(*(_references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value)) if value else set()
    return set()


def _path_references(path: str) -> set[str]:
    return {part[len(PREFIX) :] for part in path.split("/") if part.startswith(PREFIX)}


def _resolve_path(path: str, ids: dict[str, str]) -> str:
    return "/".join(ids[p[len(PREFIX) :]] if p.startswith(PREFIX) else p for p in path.split("/"))


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(PREFIX):
        return ids[value[len(PREFIX) :]]
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


def _parse(body: Any) -> tuple[list[Operation], int | None]:
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="a Bulk request is a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
        raise InvalidSyntaxException(detail=f"schemas must name {BULK_REQUEST}")
    fail_on = body.get("failOnErrors")
    if fail_on is not None and (not isinstance(fail_on, int) or isinstance(fail_on, bool) or fail_on < 1):
        raise InvalidSyntaxException(detail="failOnErrors is an integer of at least 1")
    raw = body.get("Operations")
    if not isinstance(raw, list) or not raw:
        raise InvalidSyntaxException(detail="Operations is a list of one or more operations")
    if len(raw) > m.MAX_OPERATIONS:
        raise PayloadTooLargeException(detail=f"a Bulk request carries at most {m.MAX_OPERATIONS} operations")
    unknown = sorted(set(body) - {"schemas", "failOnErrors", "Operations"})
    if unknown:
        raise InvalidSyntaxException(detail=f"unknown attribute {unknown[0]!r} in the Bulk request")
    operations = []
    bulk_ids: set[str] = set()
    for i, op in enumerate(raw):
        where = f"Operations[{i}]"
        if not isinstance(op, dict):
            raise InvalidSyntaxException(detail=f"{where} is not an object")
        method = op.get("method")
        path = op.get("path")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise InvalidSyntaxException(detail=f"{where}.method is one of {', '.join(METHODS)}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidSyntaxException(detail=f"{where}.path is a resource path such as /Users")
        bulk_id = op.get("bulkId")
        if bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id):
            raise InvalidSyntaxException(detail=f"{where}.bulkId is a non-empty string")
        method = method.upper()
        if method == "POST" and bulk_id is None:
            raise InvalidSyntaxException(detail=f"{where}: a POST names its bulkId (RFC 7644 §3.7)")
        if bulk_id is not None:
            if bulk_id in bulk_ids:
                raise InvalidSyntaxException(detail=f"{where}.bulkId '{bulk_id}' is used twice")
            bulk_ids.add(bulk_id)
        version = op.get("version")
        if version is not None and not isinstance(version, str):
            raise InvalidSyntaxException(detail=f"{where}.version is a string")
        data = op.get("data")
        if method in ("POST", "PUT", "PATCH") and not isinstance(data, dict):
            raise InvalidSyntaxException(detail=f"{where}.data is the resource (or PatchOp) to write")
        operation = Operation(i, method, path, bulk_id, version, data)
        operation.needs = _path_references(path) | _references(data)
        operations.append(operation)
    return operations, fail_on


async def run_bulk(execute: Execute, body: Any) -> Response:
    operations, fail_on = _parse(body)
    posts = {op.bulk_id: op for op in operations if op.method == "POST" and op.bulk_id}
    ids: dict[str, str] = {}
    failed_ids: set[str] = set()
    results: dict[int, dict[str, Any]] = {}
    errors = 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(op: Operation) -> None:
        nonlocal errors
        async with gate:
            if fail_on is not None and errors >= fail_on:
                return
            try:
                answer = await execute(
                    op.method, _resolve_path(op.path, ids), _resolve(op.data, ids), op.version, upsert=True
                )
            except SCIMException as exc:
                answer = Response(exc.status, exc.to_error().model_dump())
            except ValidationError as exc:
                failure = validation_error(exc)
                answer = Response(failure.status, failure.to_error().model_dump())
            except DomainError as exc:
                failure = domain_error(exc)
                answer = Response(failure.status, failure.to_error().model_dump())
            results[op.index] = _entry(op, answer)
            if answer.status >= 400:
                errors += 1
                if op.bulk_id:
                    failed_ids.add(op.bulk_id)
            elif op.method == "POST" and op.bulk_id and answer.body:
                ids[op.bulk_id] = str(answer.body["id"])

    pending = list(operations)
    while pending and (fail_on is None or errors < fail_on):
        runnable: list[Operation] = []
        busy: set[str] = set()
        for op in pending:
            unresolvable = op.needs & failed_ids or any(n not in posts for n in op.needs)
            if unresolvable:
                errors += 1
                results[op.index] = _entry(op, _unresolved(op, set(ids)))
                if op.bulk_id:
                    failed_ids.add(op.bulk_id)
            elif op.target not in busy and op.needs <= set(ids):
                runnable.append(op)
            busy.add(op.target)  # later operations on the same resource wait for this one
        pending = [op for op in pending if op.index not in results and op not in runnable]
        if not runnable:
            break
        await asyncio.gather(*(run(op) for op in runnable))
    for op in pending:  # circular references: never resolvable
        if fail_on is not None and errors >= fail_on:
            break
        results[op.index] = _entry(op, _unresolved(op, set(ids)))
        errors += 1
    return Response(200, {"schemas": [BULK_RESPONSE], "Operations": [results[i] for i in sorted(results)]})


def _unresolved(op: Operation, known: set[str]) -> Response:
    missing = sorted(op.needs - known)
    error = Error(
        status=409,
        scim_type="invalidValue",
        detail=f"bulkId {', '.join(repr(b) for b in missing)} names no resource a successful POST of this request "
        "created (an unknown, failed or circular reference)",
    )
    return Response(409, error.model_dump())


def _entry(op: Operation, answer: Response) -> dict[str, Any]:
    entry: dict[str, Any] = {"method": op.method, "status": str(answer.status)}
    if op.bulk_id is not None:
        entry["bulkId"] = op.bulk_id
    body = answer.body or {}
    if answer.status < 400:
        location = (body.get("meta") or {}).get("location") or answer.headers.get("Location")
        if location is None and op.method == "DELETE":
            location = op.path
        if location:
            entry["location"] = location
        version = (body.get("meta") or {}).get("version")
        if version:
            entry["version"] = version
    else:
        entry["response"] = body
        if op.method != "POST":
            entry["location"] = op.path
    return entry
