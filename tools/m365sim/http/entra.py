"""Entra ID's endpoints on the wire: discovery, keys, ``/oauth2/v2.0/token`` and ``/oauth2/v2.0/authorize``.

- discovery: the tenant's OpenID configuration, each request in the request log (kind ``openid``);

- token: a form POST (RFC 6749; client_secret_basic per 2.3.1), answered with JSON and ``Cache-Control: no-store``;
  errors in Entra's shape (reference-error-codes);
- managed identity: App Service's local token endpoint (``IDENTITY_ENDPOINT``, here ``/msi/token``), as
  overview-managed-identity's "REST endpoint reference" describes it: a GET with ``resource`` and
  ``api-version=2019-08-01``, the platform's secret in ``X-IDENTITY-HEADER``; errors as ``statusCode`` and
  ``message``, which MSAL reads;
- authorize (v2-oauth2-auth-code-flow): a 302 to the redirect URI with the code (``response_mode`` query or
  fragment), or an auto-submitting form (``form_post``); errors Entra shows itself are an HTML page.
"""

from __future__ import annotations

import base64
import html
import urllib.parse
import uuid

from aiohttp import web

from tools.m365sim.backends.entra.authorize import Redirect
from tools.m365sim.backends.errors import EntraError
from tools.m365sim.http.context import base_url, json_error, log_unmetered, world_of

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def basic_credentials(header: str) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 2.3.1: both parts form-url-encoded) from an Authorization header."""
    if not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip()).decode()
    except (ValueError, UnicodeDecodeError):
        raise EntraError(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ) from None
    cid, _, secret = raw.partition(":")
    return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)


async def token_handler(request: web.Request) -> web.Response:
    world = world_of(request)
    tenant_id: str | None = None
    client_id: str | None = None
    try:
        if request.method != "POST":
            raise EntraError(
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST, OPTIONS requests. Received a {request.method} request.",
            )
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        basic = basic_credentials(request.headers.get("Authorization", ""))
        client_id = basic[0] if basic else form.get("client_id")
        body, tenant_id, client_id = world.entra.token(
            base_url(request), request.match_info["tenant"], form, basic
        )
        response = web.json_response(body, headers=NO_STORE)
    except EntraError as err:
        response = json_error(err, world.clock(), NO_STORE)
    log_unmetered(
        request,
        status=response.status,
        kind="token",
        tenant_id=tenant_id,
        client_id=client_id,
        path=request.path,
    )
    return response


MSI_API_VERSION = "2019-08-01"


async def managed_identity_handler(request: web.Request) -> web.Response:
    world = world_of(request)
    client_id: str | None = None
    try:
        if request.query.get("api-version") != MSI_API_VERSION:
            raise EntraError(400, "invalid_request", 0, f"api-version must be {MSI_API_VERSION}.")
        body = world.entra.managed_identity(
            base_url(request), request.headers.get("X-IDENTITY-HEADER", ""), request.query.get("resource", "")
        )
        client_id = body["client_id"]
        response = web.json_response(body, headers=NO_STORE)
    except EntraError as err:
        response = web.json_response(
            {"statusCode": err.status, "message": err.message, "correlationId": str(uuid.uuid4())},
            status=err.status,
            headers=NO_STORE,
        )
    log_unmetered(request, status=response.status, kind="msi", client_id=client_id, path=request.path)
    return response


async def authorize_handler(request: web.Request) -> web.Response:
    world = world_of(request)
    params = dict(request.query)
    if request.method == "POST":
        params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    try:
        redirect = world.entra.authorize(request.match_info["tenant"], params)
    except EntraError as err:
        return error_page(err, world.clock())
    return redirect_response(redirect)


def redirect_response(redirect: Redirect) -> web.Response:
    if redirect.mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
            for k, v in redirect.params.items()
        )
        page = (
            f'<html><body onload="document.forms[0].submit()"><form method="POST" '
            f'action="{html.escape(redirect.uri)}">{inputs}</form></body></html>'
        )
        return web.Response(text=page, content_type="text/html")
    sep = "#" if redirect.mode == "fragment" else ("&" if "?" in redirect.uri else "?")
    return web.Response(
        status=302, headers={"Location": redirect.uri + sep + urllib.parse.urlencode(redirect.params)}
    )


def error_page(err: EntraError, now: float) -> web.Response:
    body = err.body(now)
    page = (
        "<html><head><title>Sign in to your account</title></head><body><h1>Sorry, but we're having "
        f"trouble signing you in.</h1><p>{html.escape(body['error_description'])}</p></body></html>"
    )
    return web.Response(status=400, text=page, content_type="text/html")


async def openid_handler(request: web.Request) -> web.Response:
    """The tenant's OpenID configuration, logged (kind ``openid``, its tenant as named in the path)."""
    world = world_of(request)
    tenant = request.match_info["tenant"]
    try:
        response = web.json_response(world.entra.openid_configuration(base_url(request), tenant))
    except EntraError as err:
        response = json_error(err, world.clock(), NO_STORE)
    log_unmetered(request, status=response.status, kind="openid", tenant_id=tenant.lower(), path=request.path)
    return response


async def jwks_handler(request: web.Request) -> web.Response:
    world = world_of(request)
    try:
        return web.json_response(world.entra.jwks(base_url(request), request.match_info["tenant"]))
    except EntraError as err:
        return json_error(err, world.clock(), NO_STORE)
