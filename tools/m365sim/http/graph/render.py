"""Graph's wire shapes: entities and collections with their ``@odata.context``, paging, and errors.

- paging: https://learn.microsoft.com/en-us/graph/paging (an opaque ``$skiptoken`` in ``@odata.nextLink``; directory
  collections page 100 by default, ``$top`` 1-999);
- query options: https://learn.microsoft.com/en-us/graph/query-parameters and
  https://learn.microsoft.com/en-us/graph/aad-advanced-queries (``$count`` and ``ConsistencyLevel: eventual``);
- errors: https://learn.microsoft.com/en-us/graph/errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from tools.m365sim.backends.errors import GraphError, SimError
from tools.m365sim.backends.graph.odata import (
    FilterSchema,
    QueryError,
    compile_filter,
    decode_token,
    encode_token,
    parse_top,
)
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse

Items = Callable[[str], Iterator[tuple[str, Data]]]
"""The collection in id order after an id ("" from the start)."""
Render = Callable[[Data, list[str] | None], Data]


def error_response(error: SimError, now: float) -> GraphResponse:
    return GraphResponse(error.status, error.body(now), dict(error.headers))


def context(req: GraphRequest, kind: str, select: list[str] | None) -> str:
    suffix = f"({','.join(select)})" if select else ""
    return f"{req.base_url}/$metadata#{kind}{suffix}"


def entity(
    req: GraphRequest, kind: str, body: Data, select: list[str] | None = None, status: int = 200
) -> GraphResponse:
    # user-get with $select: "@odata.context": ".../$metadata#users(displayName,givenName,postalCode)/$entity"
    return GraphResponse(status, {"@odata.context": f"{context(req, kind, select)}/$entity", **body}, {})


def advanced(req: GraphRequest) -> bool:
    # aad-advanced-queries: advanced query parameters = ConsistencyLevel: eventual + $count=true.
    eventual = req.headers.get("consistencylevel", "").lower() == "eventual"
    return eventual and (req.option("$count") or "").lower() == "true"


def skiptoken(req: GraphRequest) -> str:
    raw = req.option("$skiptoken")
    if raw is None:
        return ""
    state = decode_token(raw)
    if state is None or not isinstance(state.get("after"), str):
        raise QueryError(
            "Request_BadRequest",
            "The specified page token value has expired and can no longer be included in your request.",
        )
    return str(state["after"])


def no_expand(req: GraphRequest, type_name: str, allowed: tuple[str, ...] = ()) -> str | None:
    """The ``$expand``ed navigation property when it is one of ``allowed``; anything else is refused as Graph's
    OData layer refuses an unknown property."""
    raw = req.option("$expand")
    if raw is None:
        return None
    name = raw.strip()
    match = next((a for a in allowed if a.lower() == name.lower()), None)
    if match is None:
        raise QueryError(
            "BadRequest",
            f"Parsing OData Select and Expand failed: Could not find a property named '{name}' on type "
            f"'{type_name}'.",
        )
    return match


def collection(
    req: GraphRequest,
    kind: str,
    items: Items,
    render: Render,
    schema: FilterSchema | None,
    select: list[str] | None,
) -> GraphResponse:
    """One page of a directory collection: $filter, $select, $top, $skiptoken, $count. A page reads only as far as
    it shows (and one more to know there is a next page), as a 100,000-account tenant must be listable page by
    page; only ``$count`` walks the whole collection."""
    for option in ("$orderby", "$search", "$skip"):
        if req.option(option) is not None:
            raise QueryError(
                "Request_UnsupportedQuery", f"The query option '{option}' is not supported by the simulator."
            )
    is_advanced = advanced(req)
    top = parse_top(req.option("$top"))
    raw_filter = req.option("$filter")
    if raw_filter is not None and schema is None:
        raise QueryError(
            "Request_UnsupportedQuery", f"The query option '$filter' is not supported on '{kind}'."
        )
    predicate = (
        compile_filter(raw_filter, schema, advanced=is_advanced)
        if raw_filter is not None and schema
        else None
    )
    after = skiptoken(req)
    body: Data = {"@odata.context": context(req, kind, select)}
    if is_advanced:
        body["@odata.count"] = sum(1 for _, d in items("") if predicate is None or predicate(d))
    shown = itertools.islice(((i, d) for i, d in items(after) if predicate is None or predicate(d)), top + 1)
    page = list(shown)
    more = len(page) > top
    page = page[:top]
    body["value"] = [render(d, select) for _, d in page]
    if more:
        params = {k: v for k, v in req.query.items() if k.lower() != "$skiptoken"}
        params["$skiptoken"] = encode_token({"after": page[-1][0]})
        body["@odata.nextLink"] = f"{req.base_url}{req.path}?{urlencode(params)}"
    return GraphResponse(200, body, {})


def listed(values: list[Data]) -> Items:
    """``Items`` over a list of objects with ``id`` (sorted by id)."""
    ordered = sorted(values, key=lambda v: str(v["id"]))

    def after(start: str) -> Iterator[tuple[str, Data]]:
        return ((str(v["id"]), v) for v in ordered if str(v["id"]) > start)

    return after


def body_of(req: GraphRequest) -> dict[str, Any]:
    """The JSON object a write carries (``@odata.type`` dropped); 400 when there is none."""
    if not isinstance(req.body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return {k: v for k, v in req.body.items() if k != "@odata.type"}
