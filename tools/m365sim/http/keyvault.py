"""The Key Vault secrets API on the wire, served at the simulator's root (the vault URL is
``https://127.0.0.1:PORT/``), as azure-keyvault-secrets calls it.

Follows https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/ (Set/Get/Get Secrets/Get Secret Versions/
Delete/Get Deleted Secret/Purge Deleted Secret/Recover Deleted Secret/Update Secret) and
https://learn.microsoft.com/en-us/azure/key-vault/general/authentication-requests-and-responses :
- an unauthenticated request is answered ``401`` with
  ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`` (the
  challenge the SDK's ChallengeAuthPolicy parses), body ``{"error":{"code":"Unauthorized","message":"AKV10000:
  Request is missing a Bearer or PoP token."}}``;
- an app without a data-plane role on the vault is 403 ``ForbiddenByRbac``;
- every request needs a known ``api-version``; lists page 25 at most (``maxresults``) with a ``nextLink``.
The store and its rules are ``tools.m365sim.backends.keyvault``.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from aiohttp import web

from tools.m365sim.backends.entra.tokens import token_client_id
from tools.m365sim.backends.errors import InvalidToken, VaultError
from tools.m365sim.backends.keyvault import RECOVERABLE_DAYS, Secret, SecretVersion, check_name
from tools.m365sim.backends.tenants import VAULT_RESOURCE, Tenant
from tools.m365sim.backends.world import World
from tools.m365sim.http.context import base_url, json_error, log_unmetered, world_of

API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
LATEST_API_VERSION = "7.6"
PAGE_DEFAULT = 25  # Get Secrets: "maxresults ... If not specified the service will return up to 25 results."


# -- bundles -----------------------------------------------------------------------------------------------------
def attributes(v: SecretVersion) -> dict[str, Any]:
    a: dict[str, Any] = {
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": RECOVERABLE_DAYS,
    }
    if v.nbf is not None:
        a["nbf"] = v.nbf
    if v.exp is not None:
        a["exp"] = v.exp
    return a


def bundle(base: str, s: Secret, v: SecretVersion, *, with_value: bool = True) -> dict[str, Any]:
    b: dict[str, Any] = {"id": f"{base}/secrets/{s.name}/{v.version}", "attributes": attributes(v)}
    if with_value:
        b["value"] = v.value
    if v.content_type is not None:
        b["contentType"] = v.content_type
    if v.tags is not None:
        b["tags"] = v.tags
    return b


def item(base: str, s: Secret, v: SecretVersion, *, versioned: bool) -> dict[str, Any]:
    out = bundle(base, s, v, with_value=False)
    if not versioned:
        out["id"] = f"{base}/secrets/{s.name}"
    return out


def deleted_bundle(base: str, s: Secret, *, as_item: bool = False) -> dict[str, Any]:
    """A DeletedSecretBundle (Delete Secret, Get Deleted Secret) or, with ``as_item``, a DeletedSecretItem (Get
    Deleted Secrets). The samples of delete-secret and get-deleted-secret carry the versioned ``id`` and no
    ``value``; the list's items carry the unversioned ``id``."""
    assert s.deleted_date is not None
    b = bundle(base, s, s.versions[-1], with_value=False)
    if as_item:
        b["id"] = f"{base}/secrets/{s.name}"
    b.update(
        {
            "recoveryId": f"{base}/deletedsecrets/{s.name}",
            "deletedDate": s.deleted_date,
            "scheduledPurgeDate": s.deleted_date + RECOVERABLE_DAYS * 86400,
        }
    )
    return b


def page(request: web.Request, base: str, items: list[dict[str, Any]], path: str) -> dict[str, Any]:
    raw = request.query.get("maxresults")
    size = PAGE_DEFAULT
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 25:
            raise VaultError(400, "BadParameter", "The value of maxresults must be between 1 and 25.")
        size = int(raw)
    skip = request.query.get("$skiptoken", "0")
    start = int(skip) if skip.isdigit() else 0
    nxt = None
    if start + size < len(items):
        nxt = (
            f"{base}{path}?api-version={request.query.get('api-version')}&$skiptoken={start + size}"
            f"&maxresults={size}"
        )
    return {"value": items[start : start + size], "nextLink": nxt}


# -- authentication --------------------------------------------------------------------------------------------------
def _peek(token: str, claim: str) -> str:
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get(claim))
    except jwt.PyJWTError:
        return "(unreadable)"


def authorize(world: World, request: web.Request) -> tuple[Tenant, dict[str, Any]]:
    base = base_url(request)
    tenant = world.tenants.vault_tenant()
    if tenant is None:
        raise VaultError(
            404, "VaultNotFound", 'No tenant owns the simulated Key Vault; create one with "keyVault": true.'
        )
    challenge = {
        "WWW-Authenticate": f'Bearer authorization="{base}/{tenant.tenant_id}", resource="{VAULT_RESOURCE}"'
    }
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        raise VaultError(
            401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", headers=challenge
        )
    token = auth[7:].strip()
    expected_issuer = f"{base}/{tenant.tenant_id}/v2.0"
    try:
        claims = world.entra.validate(token, (VAULT_RESOURCE, VAULT_RESOURCE + "/"))
    except InvalidToken as exc:
        messages = {
            "signature": "AKV10021: Invalid token signature.",
            "expired": "AKV10020: Token is expired.",
            "not_yet_valid": "AKV10020: Token is not yet valid.",
            "audience": f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {_peek(token, 'aud')}.",
            "issuer": f"AKV10032: Invalid issuer. Expected one of {expected_issuer}, found: {_peek(token, 'iss')}.",
        }
        raise VaultError(401, "Unauthorized", messages[exc.reason], headers=challenge) from None
    if claims["tid"] != tenant.tenant_id:
        raise VaultError(
            401,
            "Unauthorized",
            f"AKV10032: Invalid issuer. Expected one of {expected_issuer}, found: {claims.get('iss')}.",
            headers=challenge,
        )
    app = tenant.app(token_client_id(claims))
    if app is not None and not app.key_vault_access:
        raise VaultError(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
            "assignments or role definitions were changed recently, please observe propagation "
            f"time.\r\nCaller: appid={app.app_id};oid={claims.get('oid')};"
            f"iss={claims.get('iss')}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/*'\r\n"
            "Assignment: (not found)\r\nVault: m365sim;location=local\r\n",
            inner="ForbiddenByRbac",
        )
    return tenant, claims


def check_api_version(request: web.Request) -> None:
    v = request.query.get("api-version")
    if not v:
        # Key Vault's wording for a missing api-version is not documented; BadParameter is its code for it.
        raise VaultError(
            400,
            "BadParameter",
            "The api-version query parameter is missing; it is required for "
            f"all requests. Consider using the latest supported version ({LATEST_API_VERSION}).",
        )
    if v not in API_VERSIONS:
        raise VaultError(
            400,
            "BadParameter",
            f"The specified version ({v}) is not recognized. Consider using "
            f"the latest supported version ({LATEST_API_VERSION}).",
        )


# -- operations --------------------------------------------------------------------------------------------------
def bad_method(method: str) -> VaultError:
    return VaultError(
        405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
    )


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise VaultError(400, "BadParameter", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise VaultError(400, "BadParameter", "The request body must be a JSON object.")
    return body


async def secrets_operation(world: World, request: web.Request, base: str, segs: list[str]) -> web.Response:
    vault = world.vault
    method = request.method
    now = int(world.clock())
    if len(segs) == 1 or (len(segs) == 2 and segs[1] == ""):
        if method != "GET":
            raise bad_method(method)
        items = [item(base, s, s.versions[-1], versioned=False) for s in vault.listed()]
        return web.json_response(page(request, base, items, "/secrets"))
    name = segs[1]
    version = segs[2] if len(segs) == 3 else ""
    if len(segs) == 2 and method == "PUT":
        s, v = vault.set(name, await json_object(request), now)
        return web.json_response(bundle(base, s, v))
    if len(segs) == 2 and method == "DELETE":
        return web.json_response(deleted_bundle(base, vault.delete(name, now)))
    if len(segs) == 3 and segs[2] == "versions" and method == "GET":
        s = vault.get(name)
        items = [item(base, s, v, versioned=True) for v in s.versions]
        return web.json_response(page(request, base, items, f"/secrets/{s.name}/versions"))
    if len(segs) in (2, 3) and method == "GET":
        s, v = vault.readable(name, version)
        return web.json_response(bundle(base, s, v))
    if len(segs) in (2, 3) and method == "PATCH":
        s, v = vault.update(name, version, await json_object(request), now)
        return web.json_response(bundle(base, s, v, with_value=False))
    raise bad_method(method)


def deleted_operation(world: World, request: web.Request, base: str, segs: list[str]) -> web.Response:
    vault = world.vault
    method = request.method
    if len(segs) == 1 or (len(segs) == 2 and segs[1] == ""):
        items = [deleted_bundle(base, s, as_item=True) for s in vault.deleted_listed()]
        return web.json_response(page(request, base, items, "/deletedsecrets"))
    name = segs[1]
    check_name(name)
    if len(segs) == 2 and method == "GET":
        return web.json_response(deleted_bundle(base, vault.get_deleted(name)))
    if len(segs) == 2 and method == "DELETE":
        vault.purge(name)
        return web.Response(status=204)
    if len(segs) == 3 and segs[2] == "recover" and method == "POST":
        s = vault.recover(name)
        return web.json_response(bundle(base, s, s.versions[-1], with_value=False))
    vault.get_deleted(name)
    raise bad_method(method)


async def keyvault_handler(request: web.Request) -> web.Response:
    world = world_of(request)
    tenant_id: str | None = None
    client_id: str | None = None
    try:
        tenant, claims = authorize(world, request)
        tenant_id, client_id = tenant.tenant_id, token_client_id(claims)
        check_api_version(request)
        base = base_url(request)
        # "/secrets/name/" (the SDK's latest-version form) splits into ["", "secrets", "name", ""].
        segs = request.path.split("/")[1:]
        if segs[0] == "secrets":
            response = await secrets_operation(world, request, base, segs)
        elif segs[0] == "deletedsecrets":
            response = deleted_operation(world, request, base, segs)
        else:
            raise VaultError(404, "NotFound", "The requested resource was not found.")
    except VaultError as err:
        response = json_error(err, world.clock())
    log_unmetered(request, status=response.status, kind="keyvault", tenant_id=tenant_id, client_id=client_id)
    return response
