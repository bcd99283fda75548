"""The control API under ``/_sim`` (never subject to faults, throttling or authentication).

- ``GET  /_sim/health``    → 200 ``{"status": "ok"}``
- ``POST /_sim/reset``     → 204; everything back to empty (tenants, vault, faults, throttle windows, codes and
  refresh tokens, request log, clock offset) - but not the signing keys
- ``POST /_sim/tenants``   → 201 (400 on bad input, 409 for an existing tenant id / domain / vault owner)
- ``GET  /_sim/tenants``   → ``{"value": [...]}`` (no secrets)
- ``GET|PUT /_sim/faults`` → the knobs (a PUT is a partial update)
- ``GET|PUT /_sim/clock``  → ``{"offsetSeconds": n, "now": iso}``
- ``GET  /_sim/requests[?since=seq]``, ``DELETE /_sim/requests``
- ``POST /_sim/tokens``    body ``{"tenantId": guid, "claims": {...}}`` → 200 ``{"token": jwt}``: a test backdoor
  (like moto's) that signs exactly the claims given - nothing added, the caller supplies iss/aud/exp/... - with
  the current signing key (header ``typ``/``alg`` RS256/``kid``/``x5t``, the kid published in the JWKS); 400 on a
  malformed body, 404 for an unknown tenant
- ``POST /_sim/keys/rotate`` → 200 ``{"kid": new}``: a new RSA key signs every later token; the JWKS publishes the
  new and the previous key (at most the two newest), so tokens signed with the previous key still validate at
  Graph and Key Vault until the next rotation drops it. Entra publishes several keys and rolls them without notice:
  https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover ("There's always more than one
  valid key available ... Your application should be prepared to use any and all of the keys").

``organization.onPremisesSyncEnabled`` (``POST /_sim/tenants``) is true, false or null/absent, as Graph documents
it (https://learn.microsoft.com/en-us/graph/api/resources/organization): true synced from on-premises, false
once synced but no longer, null never synced (the default). ``GET /organization`` returns the stored value.

A client (``clients[i]``) is an app registration with its service principal:

- ``clientId`` (GUID, required), ``clientSecret`` / ``clientSecrets``, ``displayName``, ``redirectUris``,
  ``scopes`` (delegated, what ``<resource>/.default`` grants a user), ``keyVaultAccess`` (default true),
  ``roles`` (Microsoft Graph application permissions: the ``roles`` of its client-credentials Graph tokens);
- as an API (https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps):
  ``identifierUris`` (App ID URIs, ``api://`` or ``https://``, unique in the tenant) and ``appRoles`` (the role
  values it defines, allowedMemberTypes Application; no spaces);
- ``appRoleAssignments``: ``{"<resource clientId or identifier URI>": ["Role", ...]}`` - app roles granted to
  this client's service principal on another app of the same tenant, each defined by that app (400 otherwise).

A client-credentials token for ``<identifierUri>/.default`` or ``<apiClientId>/.default`` of such an app has
``aud`` = the API's client id (a v2.0 token: access-token-claims-reference "In v2.0 tokens, this value is always
the client ID of the API") and ``roles`` = the roles assigned to the caller on that API, the claim omitted when
there are none. ``GET /_sim/tenants`` lists ``identifierUris``, ``appRoles`` and ``appRoleAssignments`` (keyed
by the resource's client id) for each client.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from tools.m365sim.faults import FaultConfigError
from tools.m365sim.state import GRAPH_APP_ID, GRAPH_RESOURCE, VAULT_RESOURCE, Client, Tenant, find_app

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
MAX_SEED_USERS = 20_000


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_ERROR_CODES = {400: "BadRequest", 404: "NotFound", 409: "Conflict"}


def _err(exc: ControlError) -> web.Response:
    return web.json_response(
        {"error": {"code": _ERROR_CODES[exc.status], "message": str(exc)}},
        status=exc.status,
    )


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ControlError("the body must be JSON") from None


def _sim(request: web.Request) -> Any:
    from tools.m365sim.server import SIM

    return request.app[SIM]


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key, default)
    if not isinstance(v, bool):
        raise ControlError(f"'{key}' must be true or false")
    return v


def _no_unknown_keys(raw: dict[str, Any], known: set[str], where: str = "") -> None:
    """Refuse keys outside ``known``, naming both; ``where`` prefixes the message (``"clients[0]: "``)."""
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ControlError(f"{where}unknown keys {unknown}; known: {sorted(known)}")


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise ControlError(f"{what} must be a list of non-empty strings")
    return list(value)


def _on_premises_sync(body: dict[str, Any]) -> bool | None:
    """organization.onPremisesSyncEnabled: true, false or null (absent = null, never synced)."""
    v = body.get("onPremisesSyncEnabled")
    if v is not None and not isinstance(v, bool):
        raise ControlError("'onPremisesSyncEnabled' must be true, false or null")
    return v


_RESERVED_RESOURCES = frozenset({GRAPH_RESOURCE, GRAPH_APP_ID, VAULT_RESOURCE})


def _identifier_uris(raw: dict[str, Any], i: int) -> list[str]:
    """App ID URIs (reference-app-manifest "identifierUris attribute"); ``api://`` or ``https://`` and
    something after it, no whitespace, and not a Microsoft resource the simulator serves itself."""
    uris = _str_list(raw.get("identifierUris", []), f"clients[{i}].identifierUris")
    for uri in uris:
        rest = uri.split("://", 1)[1] if "://" in uri else ""
        if (
            not uri.lower().startswith(("api://", "https://"))
            or not rest.strip("/")
            or any(c.isspace() for c in uri)
            or uri.rstrip("/").lower().endswith("/.default")
        ):
            raise ControlError(
                f"clients[{i}].identifierUris: '{uri}' must be an api:// or https:// URI (an App ID URI)"
            )
        if uri.rstrip("/").lower() in _RESERVED_RESOURCES:
            raise ControlError(f"clients[{i}].identifierUris: '{uri}' is a Microsoft resource")
    return uris


def _app_roles(raw: dict[str, Any], i: int) -> list[str]:
    """App role values, compared exactly (howto-add-app-roles-in-apps: the value "should exactly match the string
    referenced in the application's code. The value can't contain spaces")."""
    roles = _str_list(raw.get("appRoles", []), f"clients[{i}].appRoles")
    for role in roles:
        if any(c.isspace() for c in role):
            raise ControlError(f"clients[{i}].appRoles: '{role}' must not contain spaces")
    if len(set(roles)) != len(roles):
        raise ControlError(f"clients[{i}].appRoles must not list a role twice")
    return roles


def _raw_assignments(raw: dict[str, Any], i: int) -> dict[str, list[str]]:
    value = raw.get("appRoleAssignments", {})
    if not isinstance(value, dict):
        raise ControlError(
            f'clients[{i}].appRoleAssignments must be an object {{"<resource clientId or identifier URI>": '
            '["Role", ...]}'
        )
    return {
        key: _str_list(roles, f"clients[{i}].appRoleAssignments['{key}']") for key, roles in value.items()
    }


def _resolve_assignments(clients: list[Client], raw_assignments: list[dict[str, list[str]]]) -> None:
    """Check identifier URIs are unique in the tenant and key each client's assignments by the resource's
    client id, refusing resources outside the tenant and roles the resource does not define."""
    owner: dict[str, str] = {}
    for c in clients:
        for uri in c.identifier_uris:
            key = uri.rstrip("/").lower()
            if key in owner:
                raise ControlError(
                    f"identifier URI '{uri}' is used by two apps ({owner[key]} and {c.client_id}); "
                    "App ID URIs are unique in a tenant"
                )
            owner[key] = c.client_id
    for i, (client, assignments) in enumerate(zip(clients, raw_assignments, strict=True)):
        resolved: dict[str, list[str]] = {}
        for key, roles in assignments.items():
            api = find_app(clients, key)
            if api is None:
                raise ControlError(
                    f"clients[{i}].appRoleAssignments: '{key}' names no app of this tenant (give the clientId "
                    "or one of the identifierUris of an app in 'clients')"
                )
            for role in roles:
                if role not in api.app_roles:
                    raise ControlError(
                        f"clients[{i}].appRoleAssignments['{key}']: app {api.client_id} defines no app role "
                        f"'{role}' (its appRoles: {api.app_roles})"
                    )
            granted = resolved.setdefault(api.client_id, [])
            granted.extend(r for r in dict.fromkeys(roles) if r not in granted)
        client.app_role_assignments = resolved


def _parse_client(raw: Any, i: int) -> tuple[Client, dict[str, list[str]]]:
    """The client and its appRoleAssignments as given (resolved once every client is known)."""
    if not isinstance(raw, dict):
        raise ControlError(f"clients[{i}] must be an object")
    known = {
        "clientId",
        "clientSecret",
        "clientSecrets",
        "roles",
        "redirectUris",
        "scopes",
        "displayName",
        "keyVaultAccess",
        "identifierUris",
        "appRoles",
        "appRoleAssignments",
    }
    _no_unknown_keys(raw, known, f"clients[{i}]: ")
    cid = raw.get("clientId")
    if not isinstance(cid, str) or not _GUID.match(cid):
        raise ControlError(f"clients[{i}].clientId must be a GUID")
    secrets: list[str] = []
    if "clientSecret" in raw:
        if not isinstance(raw["clientSecret"], str) or not raw["clientSecret"]:
            raise ControlError(f"clients[{i}].clientSecret must be a non-empty string")
        secrets.append(raw["clientSecret"])
    if "clientSecrets" in raw:
        secrets.extend(_str_list(raw["clientSecrets"], f"clients[{i}].clientSecrets"))
    roles = _str_list(raw.get("roles", []), f"clients[{i}].roles")
    redirects = _str_list(raw.get("redirectUris", []), f"clients[{i}].redirectUris")
    for uri in redirects:
        if not uri.startswith(("https://", "http://localhost", "http://127.0.0.1")):
            raise ControlError(f"clients[{i}].redirectUris: '{uri}' must be https (or http on localhost)")
    scopes = _str_list(raw.get("scopes", ["User.Read"]), f"clients[{i}].scopes")
    name = raw.get("displayName", f"app {cid}")
    if not isinstance(name, str):
        raise ControlError(f"clients[{i}].displayName must be a string")
    client = Client(
        client_id=cid.lower(),
        secrets=secrets,
        roles=roles,
        redirect_uris=redirects,
        display_name=name,
        scopes=scopes,
        key_vault_access=_bool(raw, "keyVaultAccess", True),
        identifier_uris=_identifier_uris(raw, i),
        app_roles=_app_roles(raw, i),
    )
    return client, _raw_assignments(raw, i)


def _parse_domains(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ControlError("'domains' must be a non-empty list")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise ControlError(f"domains[{i}] must be an object")
        name = d.get("id")
        if not isinstance(name, str) or not _DOMAIN.match(name):
            raise ControlError(f"domains[{i}].id must be a domain name")
        if name.lower() in names:
            raise ControlError(f"domain '{name}' is listed twice")
        names.add(name.lower())
        auth = d.get("authenticationType", "Managed")
        if auth not in ("Managed", "Federated"):
            raise ControlError(f"domains[{i}].authenticationType must be 'Managed' or 'Federated'")
        out.append(
            {
                "id": name,
                "isDefault": _bool(d, "isDefault", False),
                "isVerified": _bool(d, "isVerified", True),
                "authenticationType": auth,
            }
        )
    defaults = [d for d in out if d["isDefault"]]
    if len(defaults) != 1:
        raise ControlError("exactly one domain must have isDefault: true")
    if not defaults[0]["isVerified"]:
        raise ControlError("the default domain must be verified")
    return out


async def create_tenant(request: web.Request) -> web.Response:
    sim = _sim(request)
    try:
        body = await _body(request)
        if not isinstance(body, dict):
            raise ControlError("the body must be a JSON object")
        known = {
            "tenantId",
            "displayName",
            "domains",
            "onPremisesSyncEnabled",
            "clients",
            "seedUsers",
            "keyVault",
        }
        _no_unknown_keys(body, known)
        tid = body.get("tenantId")
        if not isinstance(tid, str) or not _GUID.match(tid):
            raise ControlError("'tenantId' must be a GUID")
        tid = tid.lower()
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise ControlError("'displayName' must be a non-empty string")
        domains = _parse_domains(body.get("domains"))
        on_prem = _on_premises_sync(body)
        raw_clients = body.get("clients", [])
        if not isinstance(raw_clients, list):
            raise ControlError("'clients' must be a list")
        parsed = [_parse_client(c, i) for i, c in enumerate(raw_clients)]
        clients = [c for c, _ in parsed]
        if len({c.client_id for c in clients}) != len(clients):
            raise ControlError("client ids must be unique within a tenant")
        _resolve_assignments(clients, [a for _, a in parsed])
        seed = body.get("seedUsers", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED_USERS:
            raise ControlError(f"'seedUsers' must be an integer from 0 to {MAX_SEED_USERS}")
        key_vault = _bool(body, "keyVault", False)
        if tid in sim.tenants:
            raise ControlError(f"tenant '{tid}' already exists", 409)
        for t in sim.tenants.values():
            taken = set(t.domain_names()) & {d["id"].lower() for d in domains}
            if taken:
                raise ControlError(
                    f"domain '{sorted(taken)[0]}' already belongs to tenant {t.tenant_id}", 409
                )
        if key_vault and sim.vault_tenant_id is not None:
            raise ControlError(
                f"the simulated Key Vault already belongs to tenant {sim.vault_tenant_id}", 409
            )
    except ControlError as exc:
        return _err(exc)
    from tools.m365sim.directory import TenantDirectory

    directory = TenantDirectory(
        tenant_id=tid,
        display_name=name,
        domains=domains,
        on_premises_sync_enabled=on_prem,
        clock=sim.clock,
        replication_lag=sim.faults.replication_lag,
    )
    if seed:
        directory.seed_users(seed)
    tenant = Tenant(tid, name, domains, on_prem, {c.client_id: c for c in clients}, directory)
    sim.tenants[tid] = tenant
    if key_vault:
        sim.vault_tenant_id = tid
    return web.json_response(_describe(sim, request, tenant), status=201)


def _describe(sim: Any, request: web.Request, t: Tenant) -> dict[str, Any]:
    base = sim.base_url(request)
    out: dict[str, Any] = {
        "tenantId": t.tenant_id,
        "displayName": t.display_name,
        "domains": t.domains,
        "onPremisesSyncEnabled": t.on_premises_sync_enabled,
        "clients": [
            {
                "clientId": c.client_id,
                "roles": c.roles,
                "redirectUris": c.redirect_uris,
                "scopes": c.scopes,
                "secretCount": len(c.secrets),
                "identifierUris": c.identifier_uris,
                "appRoles": c.app_roles,
                "appRoleAssignments": c.app_role_assignments,
            }
            for c in t.clients.values()
        ],
        "userCount": t.directory.user_count(),
        "keyVault": sim.vault_tenant_id == t.tenant_id,
        "authority": f"{base}/{t.tenant_id}",
        "graphUrl": f"{base}/v1.0",
    }
    if out["keyVault"]:
        out["vaultUrl"] = f"{base}/"
    return out


async def list_tenants(request: web.Request) -> web.Response:
    sim = _sim(request)
    return web.json_response({"value": [_describe(sim, request, t) for t in sim.tenants.values()]})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def reset(request: web.Request) -> web.Response:
    _sim(request).reset()
    return web.Response(status=204)


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).faults.config.as_json())


async def put_faults(request: web.Request) -> web.Response:
    sim = _sim(request)
    try:
        body = await _body(request)
        cfg = sim.faults.update(body)
    except ControlError as exc:
        return _err(exc)
    except FaultConfigError as exc:
        return _err(ControlError(str(exc)))
    return web.json_response(cfg.as_json())


def _clock_json(sim: Any) -> dict[str, Any]:
    return {
        "offsetSeconds": sim.clock.offset,
        "now": dt.datetime.fromtimestamp(sim.clock(), dt.UTC).isoformat().replace("+00:00", "Z"),
    }


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(_sim(request)))


async def put_clock(request: web.Request) -> web.Response:
    sim = _sim(request)
    try:
        body = await _body(request)
        if not isinstance(body, dict) or set(body) != {"offsetSeconds"}:
            raise ControlError('the body must be {"offsetSeconds": <number>}')
        v = body["offsetSeconds"]
        if isinstance(v, bool) or not isinstance(v, int | float) or abs(v) > 10 * 365 * 86400:
            raise ControlError("'offsetSeconds' must be a number of seconds (at most ten years either way)")
    except ControlError as exc:
        return _err(exc)
    sim.clock.offset = float(v)
    return web.json_response(_clock_json(sim))


async def get_requests(request: web.Request) -> web.Response:
    sim = _sim(request)
    raw = request.query.get("since", "0")
    if not raw.isdigit():
        return _err(ControlError("'since' must be a non-negative integer sequence number"))
    return web.json_response({"value": sim.log.since(int(raw))})


async def clear_requests(request: web.Request) -> web.Response:
    _sim(request).log.clear()
    return web.Response(status=204)


async def issue_token(request: web.Request) -> web.Response:
    """``POST /_sim/tokens``: sign exactly the claims given with the current signing key (a test backdoor)."""
    sim = _sim(request)
    try:
        body = await _body(request)
        if not isinstance(body, dict):
            raise ControlError('the body must be {"tenantId": <guid>, "claims": {...}}')
        _no_unknown_keys(body, {"tenantId", "claims"})
        tid = body.get("tenantId")
        if not isinstance(tid, str) or not _GUID.match(tid):
            raise ControlError("'tenantId' must be a GUID")
        claims = body.get("claims")
        if not isinstance(claims, dict):
            raise ControlError(
                "'claims' must be a JSON object (the token's payload, exactly as it will be signed)"
            )
        if tid.lower() not in sim.tenants:
            raise ControlError(f"tenant '{tid}' does not exist", 404)
    except ControlError as exc:
        return _err(exc)
    return web.json_response({"token": sim.entra.sign(claims)})


async def rotate_keys(request: web.Request) -> web.Response:
    """``POST /_sim/keys/rotate``: a new signing key; the JWKS keeps the previous one (signing-key-rollover)."""
    return web.json_response({"kid": _sim(request).entra.rotate_key()})


def add_control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/health", health)
    r.add_post("/_sim/reset", reset)
    r.add_post("/_sim/tenants", create_tenant)
    r.add_get("/_sim/tenants", list_tenants)
    r.add_get("/_sim/faults", get_faults)
    r.add_put("/_sim/faults", put_faults)
    r.add_get("/_sim/clock", get_clock)
    r.add_put("/_sim/clock", put_clock)
    r.add_get("/_sim/requests", get_requests)
    r.add_delete("/_sim/requests", clear_requests)
    r.add_post("/_sim/tokens", issue_token)
    r.add_post("/_sim/keys/rotate", rotate_keys)
