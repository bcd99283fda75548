"""The control API under ``/_sim`` (never subject to faults, throttling or authentication); the rules are
``tools.m365sim.backends.admin``'s.

- ``GET  /_sim/health`` → 200 ``{"status": "ok"}``
- ``POST /_sim/reset`` → 204; everything back to empty (tenants, vault, consents, codes, refresh tokens, faults,
  throttle windows, request log, clock offset) - but not the signing keys
- ``POST /_sim/tenants`` → 201 (400 on bad input, 409 for an existing tenant id / domain / vault owner);
  ``GET /_sim/tenants`` → ``{"value": [...]}`` (no secrets); ``PATCH /_sim/tenants/{tenantId}``
  ``{"onPremisesSyncEnabled"}`` → 200
- ``PUT /_sim/tenants/{tenantId}/clients/{clientId}`` → 201 created / 200 updated: an app registration as in
  ``clients[i]``; secrets and certificates are added to the existing ones, never replaced
- ``POST /_sim/tenants/{tenantId}/roleAssignments`` ``{"principal", "role", "eligible"?, "startDateTime"?,
  "endDateTime"?}`` → 201: an active tenant-wide role assignment, or a PIM eligibility
- ``POST /_sim/tenants/{tenantId}/appRoleAssignments`` ``{"principal", "resource", "appRole"}`` → 201: a user
  assigned an app role of one of the tenant's APIs (its delegated tokens for that API carry it in ``roles``)
- ``GET``, ``DELETE /_sim/tenants/{tenantId}/consents[?clientId=&user=]`` → the delegated consents, or their
  withdrawal (200 ``{"revoked": n}``)
- ``GET``, ``PUT /_sim/tenants/{tenantId}/policies/temporaryAccessPass`` → the Temporary Access Pass policy
- ``GET|PUT /_sim/faults`` → the knobs (a PUT is a partial update)
- ``GET|PUT /_sim/clock`` → ``{"offsetSeconds": n, "now": iso}``; a PUT takes ``{"offsetSeconds"}`` or
  ``{"advanceSeconds"}``
- ``GET /_sim/requests[?since=seq]``, ``DELETE /_sim/requests``
- ``POST /_sim/tokens`` ``{"tenantId", "claims"}`` → 200 ``{"token": jwt}``: exactly the claims given, signed with
  the current key (a test backdoor, like moto's)
- ``POST /_sim/keys/rotate`` → 200 ``{"kid": new}``
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tools.m365sim.backends.admin import Admin
from tools.m365sim.backends.errors import ControlError, SimError
from tools.m365sim.http.context import base_url, world_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(exc: SimError) -> web.Response:
    return web.json_response(exc.body(0), status=exc.status)


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise ControlError("the body must be JSON") from None


def _admin(request: web.Request) -> Admin:
    return Admin(world_of(request))


def control(handler: Handler) -> Handler:
    """Turn a handler's ControlError into the control API's error answer."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except SimError as exc:
            return _error(exc)
        return response

    return wrapped


@control
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@control
async def reset(request: web.Request) -> web.Response:
    world_of(request).reset()
    return web.Response(status=204)


@control
async def create_tenant(request: web.Request) -> web.Response:
    admin = _admin(request)
    tenant = admin.create_tenant(await _body(request))
    return web.json_response(admin.describe(tenant, base_url(request)), status=201)


@control
async def list_tenants(request: web.Request) -> web.Response:
    admin = _admin(request)
    tenants = world_of(request).tenants.all()
    return web.json_response({"value": [admin.describe(t, base_url(request)) for t in tenants]})


@control
async def update_tenant(request: web.Request) -> web.Response:
    admin = _admin(request)
    tenant = admin.update_tenant(request.match_info["tenant"], await _body(request))
    return web.json_response(admin.describe(tenant, base_url(request)))


@control
async def put_client(request: web.Request) -> web.Response:
    admin = _admin(request)
    app, created = admin.upsert_client(
        request.match_info["tenant"], request.match_info["client"], await _body(request)
    )
    return web.json_response(admin.describe_client(app), status=201 if created else 200)


@control
async def assign_role(request: web.Request) -> web.Response:
    record = _admin(request).assign_role(request.match_info["tenant"], await _body(request))
    return web.json_response(record, status=201)


@control
async def assign_app_role(request: web.Request) -> web.Response:
    record = _admin(request).assign_app_role(request.match_info["tenant"], await _body(request))
    return web.json_response(record, status=201)


@control
async def list_consents(request: web.Request) -> web.Response:
    consents = _admin(request).consents(request.match_info["tenant"], dict(request.query))
    return web.json_response({"value": consents})


@control
async def revoke_consents(request: web.Request) -> web.Response:
    revoked = _admin(request).revoke_consents(request.match_info["tenant"], dict(request.query))
    return web.json_response({"revoked": revoked})


@control
async def tap_policy(request: web.Request) -> web.Response:
    body = await _body(request) if request.method == "PUT" else None
    return web.json_response(_admin(request).temporary_access_pass_policy(request.match_info["tenant"], body))


@control
async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(world_of(request).faults.config.as_json())


@control
async def put_faults(request: web.Request) -> web.Response:
    return web.json_response(world_of(request).faults.update(await _body(request)).as_json())


@control
async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_admin(request).clock())


@control
async def put_clock(request: web.Request) -> web.Response:
    return web.json_response(_admin(request).set_clock(await _body(request)))


@control
async def get_requests(request: web.Request) -> web.Response:
    raw = request.query.get("since", "0")
    if not raw.isdigit():
        raise ControlError("'since' must be a non-negative integer sequence number")
    return web.json_response({"value": world_of(request).log.since(int(raw))})


@control
async def clear_requests(request: web.Request) -> web.Response:
    world_of(request).log.clear()
    return web.Response(status=204)


@control
async def issue_token(request: web.Request) -> web.Response:
    return web.json_response({"token": _admin(request).issue_token(await _body(request))})


@control
async def rotate_keys(request: web.Request) -> web.Response:
    """A new signing key; the JWKS keeps the previous one (signing-key-rollover)."""
    return web.json_response({"kid": world_of(request).entra.keys.rotate()})


def add_control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/health", health)
    r.add_post("/_sim/reset", reset)
    r.add_post("/_sim/tenants", create_tenant)
    r.add_get("/_sim/tenants", list_tenants)
    r.add_patch("/_sim/tenants/{tenant}", update_tenant)
    r.add_put("/_sim/tenants/{tenant}/clients/{client}", put_client)
    r.add_post("/_sim/tenants/{tenant}/roleAssignments", assign_role)
    r.add_post("/_sim/tenants/{tenant}/appRoleAssignments", assign_app_role)
    r.add_get("/_sim/tenants/{tenant}/consents", list_consents)
    r.add_delete("/_sim/tenants/{tenant}/consents", revoke_consents)
    r.add_get("/_sim/tenants/{tenant}/policies/temporaryAccessPass", tap_policy)
    r.add_put("/_sim/tenants/{tenant}/policies/temporaryAccessPass", tap_policy)
    r.add_get("/_sim/faults", get_faults)
    r.add_put("/_sim/faults", put_faults)
    r.add_get("/_sim/clock", get_clock)
    r.add_put("/_sim/clock", put_clock)
    r.add_get("/_sim/requests", get_requests)
    r.add_delete("/_sim/requests", clear_requests)
    r.add_post("/_sim/tokens", issue_token)
    r.add_post("/_sim/keys/rotate", rotate_keys)
