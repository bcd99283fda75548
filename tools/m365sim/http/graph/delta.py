"""``GET /users/delta`` and ``GET /groups/delta`` on the wire: the backend's page (``tools.m365sim.backends.graph.
delta``) with its ``@odata.nextLink`` or ``@odata.deltaLink``, ``Preference-Applied``, and the 410 of an expired
token with the initial delta URL in ``Location`` (delta-query-overview, "Synchronization reset")."""

from __future__ import annotations

from urllib.parse import urlencode

from tools.m365sim.backends.errors import SyncStateNotFound
from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse


def _prefers_minimal(req: GraphRequest) -> bool:
    """``Prefer: return=minimal`` (user-delta / group-delta, "Request headers"), among other preferences."""
    for preference in req.headers.get("prefer", "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False


def delta(kind: str, d: TenantDirectory, req: GraphRequest) -> GraphResponse:
    try:
        page = d.delta.page(kind, req.query, _prefers_minimal(req))
    except SyncStateNotFound as exc:
        exc.headers["Location"] = f"{req.base_url}/{kind}/delta"
        raise
    body: dict[str, object] = {"@odata.context": f"{req.base_url}/$metadata#{kind}", "value": page.value}
    link = f"{req.base_url}/{kind}/delta?"
    if page.final:
        body["@odata.deltaLink"] = link + urlencode({"$deltatoken": page.token})
    else:
        body["@odata.nextLink"] = link + urlencode({"$skiptoken": page.token})
    # RFC 7240 section 3: a server that honours a preference says so in Preference-Applied.
    return GraphResponse(200, body, {"Preference-Applied": "return=minimal"} if page.minimal else {})


def users_delta(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    return delta("users", d, req)


def groups_delta(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    return delta("groups", d, req)
