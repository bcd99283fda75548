"""The Key Vault secrets API, served at the simulator's root (the vault URL is ``https://127.0.0.1:PORT/``).

Follows https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/ (Set/Get/Get Secrets/Get Secret Versions/
Delete/Get Deleted Secret/Purge Deleted Secret/Recover Deleted Secret/Update Secret) and
https://learn.microsoft.com/en-us/azure/key-vault/general/authentication-requests-and-responses :
- an unauthenticated request is answered ``401`` with
  ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`` (the
  challenge the SDK's ChallengeAuthPolicy parses), body ``{"error":{"code":"Unauthorized","message":"AKV10000:
  Request is missing a Bearer or PoP token."}}``;
- errors are ``{"error": {"code", "message", "innererror"?}}``: 404 ``SecretNotFound``, 400 ``BadParameter``,
  403 ``Forbidden`` (``ForbiddenByRbac``, ``SecretDisabled``), 409 ``Conflict`` for a name in the deleted state;
- soft delete (https://learn.microsoft.com/en-us/azure/key-vault/general/soft-delete-overview): deleted secrets
  stay recoverable for 90 days at ``/deletedsecrets/{name}`` until purged.
Secret values never reach logs or the request log.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tools.m365sim.entra import TokenInvalid, token_client_id
from tools.m365sim.state import VAULT_RESOURCE, Tenant

if TYPE_CHECKING:
    from tools.m365sim.server import Simulator

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
LATEST_API_VERSION = "7.6"
RECOVERABLE_DAYS = 90
PAGE_DEFAULT = 25  # Get Secrets: "maxresults ... If not specified the service will return up to 25 results."
NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery "
    "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


@dataclass
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass
class Secret:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)
    deleted_date: int | None = None


class KvError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.headers = headers or {}

    def response(self) -> web.Response:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            err["innererror"] = {"code": self.inner}
        return web.json_response({"error": err}, status=self.status, headers=self.headers)


class Vault:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.secrets: dict[str, Secret] = {}
        self.deleted: dict[str, Secret] = {}

    def reset(self) -> None:
        self.secrets.clear()
        self.deleted.clear()

    # ------------------------------------------------------------------ auth
    def _challenge(self, base: str, tenant: Tenant) -> dict[str, str]:
        return {
            "WWW-Authenticate": f'Bearer authorization="{base}/{tenant.tenant_id}", '
            f'resource="{VAULT_RESOURCE}"'
        }

    def authorize(self, request: web.Request) -> tuple[Tenant, dict[str, Any]]:
        base = self.sim.base_url(request)
        tenant = self.sim.vault_tenant()
        if tenant is None:
            raise KvError(
                404,
                "VaultNotFound",
                'No tenant owns the simulated Key Vault; create one with "keyVault": true.',
            )
        challenge = self._challenge(base, tenant)
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise KvError(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", headers=challenge
            )
        token = auth[7:].strip()
        try:
            claims = self.sim.entra.validate(token, (VAULT_RESOURCE, VAULT_RESOURCE + "/"))
        except TokenInvalid as exc:
            messages = {
                "signature": "AKV10021: Invalid token signature.",
                "expired": "AKV10020: Token is expired.",
                "not_yet_valid": "AKV10020: Token is not yet valid.",
                "audience": f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: "
                f"{self._peek(token, 'aud')}.",
                "issuer": f"AKV10032: Invalid issuer. Expected one of {base}/{tenant.tenant_id}/v2.0, found: "
                f"{self._peek(token, 'iss')}.",
            }
            raise KvError(401, "Unauthorized", messages[exc.reason], headers=challenge) from None
        if claims["tid"] != tenant.tenant_id:
            raise KvError(
                401,
                "Unauthorized",
                f"AKV10032: Invalid issuer. Expected one of {base}/{tenant.tenant_id}/v2.0, found: "
                f"{claims.get('iss')}.",
                headers=challenge,
            )
        client = tenant.clients.get(token_client_id(claims))
        if client is not None and not client.key_vault_access:
            raise KvError(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                "assignments or role definitions were changed recently, please observe propagation "
                f"time.\r\nCaller: appid={client.client_id};oid={claims.get('oid')};"
                f"iss={claims.get('iss')}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/*'\r\n"
                "Assignment: (not found)\r\nVault: m365sim;location=local\r\n",
                inner="ForbiddenByRbac",
            )
        return tenant, claims

    @staticmethod
    def _peek(token: str, claim: str) -> str:
        import jwt

        try:
            return str(jwt.decode(token, options={"verify_signature": False}).get(claim))
        except jwt.PyJWTError:
            return "(unreadable)"

    @staticmethod
    def check_api_version(request: web.Request) -> None:
        v = request.query.get("api-version")
        if not v:
            # Key Vault's wording for a missing api-version is not documented; BadParameter is its code for it.
            raise KvError(
                400,
                "BadParameter",
                "The api-version query parameter is missing; it is required for "
                f"all requests. Consider using the latest supported version ({LATEST_API_VERSION}).",
            )
        if v not in API_VERSIONS:
            raise KvError(
                400,
                "BadParameter",
                f"The specified version ({v}) is not recognized. Consider using "
                f"the latest supported version ({LATEST_API_VERSION}).",
            )

    # ------------------------------------------------------------------ bundles
    def _attributes(self, v: SecretVersion) -> dict[str, Any]:
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

    def _bundle(self, base: str, s: Secret, v: SecretVersion, *, with_value: bool = True) -> dict[str, Any]:
        b: dict[str, Any] = {"id": f"{base}/secrets/{s.name}/{v.version}", "attributes": self._attributes(v)}
        if with_value:
            b["value"] = v.value
        if v.content_type is not None:
            b["contentType"] = v.content_type
        if v.tags is not None:
            b["tags"] = v.tags
        return b

    def _item(self, base: str, s: Secret, v: SecretVersion, *, versioned: bool) -> dict[str, Any]:
        item = self._bundle(base, s, v, with_value=False)
        if not versioned:
            item["id"] = f"{base}/secrets/{s.name}"
        return item

    def _deleted(self, base: str, s: Secret, *, item: bool = False) -> dict[str, Any]:
        """A DeletedSecretBundle (Delete Secret, Get Deleted Secret) or, with ``item``, a DeletedSecretItem (Get
        Deleted Secrets). The samples of delete-secret and get-deleted-secret carry the versioned ``id`` and no
        ``value``; the list's items carry the unversioned ``id``."""
        assert s.deleted_date is not None
        b = self._bundle(base, s, s.versions[-1], with_value=False)
        if item:
            b["id"] = f"{base}/secrets/{s.name}"
        b.update(
            {
                "recoveryId": f"{base}/deletedsecrets/{s.name}",
                "deletedDate": s.deleted_date,
                "scheduledPurgeDate": s.deleted_date + RECOVERABLE_DAYS * 86400,
            }
        )
        return b

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME_RE.match(name):
            raise KvError(400, "BadParameter", f"The request URI contains an invalid name: {name}")

    def _get(self, name: str) -> Secret:
        self._check_name(name)
        s = self.secrets.get(name.lower())
        if s is None:
            raise KvError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault. {NOT_FOUND_HELP}",
            )
        return s

    def _version(self, s: Secret, version: str) -> SecretVersion:
        if not version:
            return s.versions[-1]
        for v in s.versions:
            if v.version.lower() == version.lower():
                return v
        raise KvError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {s.name}/{version} was not found in this key vault. {NOT_FOUND_HELP}",
        )

    @staticmethod
    def _parse_attributes(body: dict[str, Any]) -> dict[str, Any]:
        attrs = body.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise KvError(400, "BadParameter", "Property attributes must be an object.")
        out: dict[str, Any] = {}
        for key in ("enabled",):
            if key in attrs:
                if not isinstance(attrs[key], bool):
                    raise KvError(400, "BadParameter", f"Property attributes.{key} must be a boolean.")
                out[key] = attrs[key]
        for key in ("nbf", "exp"):
            if key in attrs and attrs[key] is not None:
                if isinstance(attrs[key], bool) or not isinstance(attrs[key], int):
                    raise KvError(400, "BadParameter", f"Property attributes.{key} must be a Unix time.")
                out[key] = attrs[key]
        return out

    @staticmethod
    def _parse_tags(body: dict[str, Any]) -> dict[str, str] | None:
        tags = body.get("tags")
        if tags is None:
            return None
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise KvError(400, "BadParameter", "Property tags must be an object of strings.")
        if len(tags) > 15:
            raise KvError(400, "BadParameter", "A maximum of 15 tags is allowed.")
        return dict(tags)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise KvError(400, "BadParameter", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise KvError(400, "BadParameter", "The request body must be a JSON object.")
        return body

    def _page(
        self, request: web.Request, base: str, items: list[dict[str, Any]], path: str
    ) -> dict[str, Any]:
        raw = request.query.get("maxresults")
        size = PAGE_DEFAULT
        if raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= 25:
                raise KvError(400, "BadParameter", "The value of maxresults must be between 1 and 25.")
            size = int(raw)
        skip = request.query.get("$skiptoken", "0")
        start = int(skip) if skip.isdigit() else 0
        page = items[start : start + size]
        nxt = None
        if start + size < len(items):
            nxt = (
                f"{base}{path}?api-version={request.query.get('api-version')}&$skiptoken={start + size}"
                f"&maxresults={size}"
            )
        return {"value": page, "nextLink": nxt}

    # ------------------------------------------------------------------ operations
    async def handle(self, request: web.Request) -> tuple[web.Response, str | None, str | None]:
        """Returns (response, tenant id, client id) for the request log."""
        tenant_id: str | None = None
        client_id: str | None = None
        try:
            tenant, claims = self.authorize(request)
            tenant_id, client_id = tenant.tenant_id, token_client_id(claims)
            self.check_api_version(request)
            resp = await self._operation(request)
            return resp, tenant_id, client_id
        except KvError as err:
            return err.response(), tenant_id, client_id

    async def _operation(self, request: web.Request) -> web.Response:
        base = self.sim.base_url(request)
        parts = [p for p in request.path.split("/")]
        # "/secrets/name/" (the SDK's latest-version form) splits into ["", "secrets", "name", ""].
        segs = parts[1:]
        method = request.method
        now = int(self.sim.clock())
        if segs[0] == "secrets":
            if len(segs) == 1 or (len(segs) == 2 and segs[1] == ""):
                if method != "GET":
                    raise self._bad_method(method)
                items = [
                    self._item(base, s, s.versions[-1], versioned=False)
                    for s in sorted(self.secrets.values(), key=lambda s: s.name.lower())
                ]
                return web.json_response(self._page(request, base, items, "/secrets"))
            name = segs[1]
            if len(segs) == 2 and method == "PUT":
                return web.json_response(await self._set(request, base, name, now))
            if len(segs) == 2 and method == "DELETE":
                s = self._get(name)
                del self.secrets[name.lower()]
                s.deleted_date = now
                self.deleted[name.lower()] = s
                return web.json_response(self._deleted(base, s))
            if len(segs) == 3 and segs[2] == "versions" and method == "GET":
                s = self._get(name)
                items = [self._item(base, s, v, versioned=True) for v in s.versions]
                return web.json_response(self._page(request, base, items, f"/secrets/{s.name}/versions"))
            if len(segs) in (2, 3) and method == "GET":
                s = self._get(name)
                v = self._version(s, segs[2] if len(segs) == 3 else "")
                if not v.enabled:
                    raise KvError(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                        inner="SecretDisabled",
                    )
                return web.json_response(self._bundle(base, s, v))
            if len(segs) in (2, 3) and method == "PATCH":
                s = self._get(name)
                v = self._version(s, segs[2] if len(segs) == 3 else "")
                body = await self._json(request)
                attrs = self._parse_attributes(body)
                v.enabled = attrs.get("enabled", v.enabled)
                v.nbf = attrs.get("nbf", v.nbf)
                v.exp = attrs.get("exp", v.exp)
                if "contentType" in body:
                    v.content_type = body["contentType"]
                if "tags" in body:
                    v.tags = self._parse_tags(body)
                v.updated = now
                return web.json_response(self._bundle(base, s, v, with_value=False))
            raise self._bad_method(method)
        if segs[0] == "deletedsecrets":
            if len(segs) == 1 or (len(segs) == 2 and segs[1] == ""):
                items = [
                    self._deleted(base, s, item=True)
                    for s in sorted(self.deleted.values(), key=lambda s: s.name.lower())
                ]
                return web.json_response(self._page(request, base, items, "/deletedsecrets"))
            name = segs[1]
            self._check_name(name)
            ds = self.deleted.get(name.lower())
            if ds is None:
                raise KvError(404, "SecretNotFound", "Deleted Secret not found")
            if len(segs) == 2 and method == "GET":
                return web.json_response(self._deleted(base, ds))
            if len(segs) == 2 and method == "DELETE":
                del self.deleted[name.lower()]
                return web.Response(status=204)
            if len(segs) == 3 and segs[2] == "recover" and method == "POST":
                del self.deleted[name.lower()]
                ds.deleted_date = None
                self.secrets[name.lower()] = ds
                return web.json_response(self._bundle(base, ds, ds.versions[-1], with_value=False))
            raise self._bad_method(method)
        raise KvError(404, "NotFound", "The requested resource was not found.")

    @staticmethod
    def _bad_method(method: str) -> KvError:
        return KvError(
            405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
        )

    async def _set(self, request: web.Request, base: str, name: str, now: int) -> dict[str, Any]:
        self._check_name(name)
        if name.lower() in self.deleted:
            raise KvError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                "reused; in this state, the secret can only be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        body = await self._json(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise KvError(400, "BadParameter", "Property value is required and must be a string.")
        if len(value.encode()) > 25 * 1024:
            raise KvError(400, "BadParameter", "Secret value is too long; the maximum size is 25 KB.")
        ct = body.get("contentType")
        if ct is not None and not isinstance(ct, str):
            raise KvError(400, "BadParameter", "Property contentType must be a string.")
        attrs = self._parse_attributes(body)
        version = SecretVersion(
            uuid.uuid4().hex,
            value,
            ct,
            self._parse_tags(body),
            attrs.get("enabled", True),
            attrs.get("nbf"),
            attrs.get("exp"),
            now,
            now,
        )
        s = self.secrets.setdefault(name.lower(), Secret(name))
        s.versions.append(version)
        return self._bundle(base, s, version)
