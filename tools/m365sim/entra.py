"""The Microsoft identity platform (Entra ID) v2.0 endpoints the simulator serves.

- OpenID Connect discovery and keys: https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc
- Client credentials: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
- Authorization code (+ PKCE): https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
- Refresh tokens (90 days, replaced on each use):
  https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens
- Error response shape and AADSTS codes:
  https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
- Access token claims: https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference
- App roles of a custom API, granted to client apps (application permissions) and emitted in the ``roles`` claim:
  https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps
- Signing keys published in the JWKS and rolled over:
  https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import html
import json
import re
import secrets
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tools.m365sim.state import GRAPH_APP_ID, GRAPH_RESOURCE, VAULT_RESOURCE, Client, Tenant

if TYPE_CHECKING:
    from tools.m365sim.server import Simulator

ACCESS_TOKEN_LIFETIME_S = 3599
PUBLISHED_KEYS = 2  # the current signing key and the one before it (POST /_sim/keys/rotate)
CODE_LIFETIME_S = 600  # "Authorization codes are short lived. Typically, they expire after about 10 minutes."
REFRESH_TOKEN_LIFETIME_S = (
    90 * 24 * 3600
)  # refresh-tokens: "The default lifetime ... is 24 hours for SPAs and 90 days for all other scenarios"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations", "consumers"})
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(n: int) -> str:
    return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class SigningKey:
    """One RSA signing key, published in the JWKS with its ``kid``."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private_key.public_key().public_numbers()
        self.n = _b64url_uint(numbers.n)
        self.e = _b64url_uint(numbers.e)
        # Entra's kid is the base64url SHA-1 thumbprint of the signing certificate (same value as x5t).
        self.kid = _b64url(hashlib.sha1(f"{self.n}.{self.e}".encode()).digest())

    def jwk(self, issuer: str) -> dict[str, Any]:
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "alg": "RS256",
            "issuer": issuer,
        }

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWS of ``claims`` serialised as they are: PyJWS, not PyJWT's encode, which would refuse claims of
        unexpected types (a test may want a token with a malformed ``iss`` or ``exp``)."""
        return jwt.api_jws.encode(
            json.dumps(claims, separators=(",", ":")).encode(),
            self.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.kid, "x5t": self.kid},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Signature only; lifetime and audience are the resource's checks (it knows the simulator clock)."""
        return jwt.decode(
            token,
            self.private_key.public_key(),
            algorithms=["RS256"],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_iss": False,
            },
        )


@dataclass
class User:
    id: str
    upn: str
    name: str


@dataclass
class AuthCode:
    tenant_id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str | None
    challenge: str | None
    challenge_method: str
    user: User
    issued: float
    used: bool = False


@dataclass
class RefreshToken:
    tenant_id: str
    client_id: str
    user: User
    scopes: list[str]
    issued: float
    auth_time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class AadError(Exception):
    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message


def aad_error_body(sim: Simulator, err: AadError) -> dict[str, Any]:
    """https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes#handling-error-codes-in-your-application"""
    ts = dt.datetime.fromtimestamp(sim.clock(), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    return {
        "error": err.error,
        "error_description": f"AADSTS{err.code}: {err.message}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {corr}\r\nTimestamp: {ts}",
        "error_codes": [err.code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    }


def aad_error_response(sim: Simulator, err: AadError) -> web.Response:
    return web.json_response(
        aad_error_body(sim, err),
        status=err.status,
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


def unknown_tenant(segment: str) -> AadError:
    return AadError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may happen "
        "if there are no active subscriptions for the tenant.",
    )


def missing_parameter(name: str) -> AadError:
    return AadError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def unknown_client(client_id: str, tenant_name: str) -> AadError:
    # reference-error-codes: AADSTS700016 UnauthorizedClient_DoesNotMatchRequest (error "unauthorized_client")
    return AadError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. "
        "This can happen if the application has not been installed by the administrator of the tenant "
        "or consented to by any user in the tenant. You may have sent your authentication request to "
        "the wrong tenant.",
    )


Grant = TypeVar("Grant", AuthCode, RefreshToken)


class Entra:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.keys: list[SigningKey] = [SigningKey()]
        """Newest first: ``keys[0]`` signs, all are published (at most PUBLISHED_KEYS). ``POST /_sim/reset``
        keeps them, as Entra's keys do not change when a tenant does."""
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}

    def reset(self) -> None:
        self.codes.clear()
        self.refresh_tokens.clear()

    # ----------------------------------------------------------------- signing keys
    @property
    def key(self) -> SigningKey:
        """The key that signs new tokens."""
        return self.keys[0]

    def rotate_key(self) -> str:
        """A new signing key for every later token; the previous one stays published so the tokens it signed keep
        validating until the next rotation (signing-key-rollover: "There's always more than one valid key
        available ... one key may be rolled soon, another may be its replacement"). Returns the new kid."""
        self.keys = [SigningKey(), *self.keys][:PUBLISHED_KEYS]
        return self.key.kid

    def sign(self, claims: dict[str, Any]) -> str:
        """``claims`` exactly as given, signed with the current key (``POST /_sim/tokens``)."""
        return self.key.sign(claims)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token signed by one of the published keys (chosen by the header's ``kid``)."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in self.keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidSignatureError("unknown kid")
        return key.verify(token)

    # ----------------------------------------------------------------- discovery
    def issuer(self, base: str, tenant_id: str) -> str:
        return f"{base}/{tenant_id}/v2.0"

    def openid_configuration(self, base: str, segment: str) -> dict[str, Any]:
        """v2-protocols-oidc "Find your app's OpenID configuration document URI"; for common/organizations the
        issuer carries the literal ``{tenantid}`` placeholder, as Entra's does."""
        tenant = self.sim.resolve_tenant(segment)
        if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS - {"consumers"}:
            raise unknown_tenant(segment)
        path_segment = tenant.tenant_id if tenant else segment.lower()
        tid = tenant.tenant_id if tenant else "{tenantid}"
        root = f"{base}/{path_segment}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer(base, tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self, base: str, segment: str) -> dict[str, Any]:
        tenant = self.sim.resolve_tenant(segment)
        if tenant is None and segment.lower() not in MULTI_TENANT_SEGMENTS - {"consumers"}:
            raise unknown_tenant(segment)
        issuer = self.issuer(base, tenant.tenant_id if tenant else "{tenantid}")
        return {"keys": [k.jwk(issuer) for k in self.keys]}

    # ----------------------------------------------------------------- tokens
    def _now(self) -> int:
        return int(self.sim.clock())

    def access_token(
        self,
        base: str,
        tenant: Tenant,
        client: Client,
        aud: str,
        *,
        roles: list[str] | None = None,
        scp: str | None = None,
        user: User | None = None,
    ) -> str:
        now = self._now()
        iss = self.issuer(base, tenant.tenant_id)
        claims: dict[str, Any] = {
            "aud": aud,
            "iss": iss,
            "iat": now,
            "nbf": now,
            "exp": now + ACCESS_TOKEN_LIFETIME_S,
            "aio": _b64url(secrets.token_bytes(24)),
            "azp": client.client_id,
            "appid": client.client_id,
            "azpacr": "1",
            "appidacr": "1",
            "idp": iss,
            "rh": "0." + _b64url(secrets.token_bytes(16)),
            "tid": tenant.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if user is None:
            sp = client.service_principal_id(tenant.tenant_id)
            claims.update({"oid": sp, "sub": sp, "idtyp": "app"})
            if roles:
                claims["roles"] = list(roles)
        else:
            claims.update(
                {
                    "oid": user.id,
                    "sub": self._pairwise_sub(client.client_id, user.id),
                    "idtyp": "user",
                    "name": user.name,
                    "preferred_username": user.upn,
                    "upn": user.upn,
                    "scp": scp or "",
                }
            )
        return self.key.sign(claims)

    def _pairwise_sub(self, client_id: str, oid: str) -> str:
        return _b64url(hashlib.sha256(f"{client_id}:{oid}".encode()).digest())

    def id_token(self, base: str, tenant: Tenant, client: Client, user: User, nonce: str | None) -> str:
        now = self._now()
        claims: dict[str, Any] = {
            "aud": client.client_id,
            "iss": self.issuer(base, tenant.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + ACCESS_TOKEN_LIFETIME_S,
            "name": user.name,
            "oid": user.id,
            "preferred_username": user.upn,
            "rh": "0." + _b64url(secrets.token_bytes(16)),
            "sub": self._pairwise_sub(client.client_id, user.id),
            "tid": tenant.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return self.key.sign(claims)

    def resolve_resource(self, tenant: Tenant, resource: str) -> str:
        """The ``aud`` of a token for ``resource`` (the part of a scope before the permission).

        An app of the tenant, named by one of its identifierUris or by its client id, is an API: the token is a
        v2.0 one, so ``aud`` is the API's client id (access-token-claims-reference, ``aud``: "In v2.0 tokens, this
        value is always the client ID of the API"; the simulator's APIs behave as if their manifest had
        ``requestedAccessTokenVersion: 2``, reference-app-manifest). Any other ``api://`` resource is still
        answered with ``aud`` = that URI, as before API apps could be registered."""
        r = resource.rstrip("/")
        if r.lower() in (GRAPH_RESOURCE, "https://graph.microsoft.com/v1.0", GRAPH_APP_ID):
            return GRAPH_RESOURCE if r.lower() != GRAPH_APP_ID else GRAPH_APP_ID
        if r.lower() == VAULT_RESOURCE:
            return VAULT_RESOURCE
        api = tenant.api_app(r)
        if api is not None:
            return api.client_id
        if r.startswith("api://") and len(r) > len("api://"):
            return r
        raise AadError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant.display_name}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You might have "
            "sent your authentication request to the wrong tenant.",
        )

    @staticmethod
    def _client_auth(request: web.Request, form: dict[str, str]) -> tuple[str | None, str | None]:
        """client_secret_post or client_secret_basic (RFC 6749 2.3.1: both parts form-url-encoded)."""
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AadError(
                    401,
                    "invalid_client",
                    7000216,
                    "'client_assertion', 'client_secret' or 'request' is required for the "
                    "'client_credentials' grant type.",
                ) from None
            cid, _, secret = raw.partition(":")
            return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
        return form.get("client_id"), form.get("client_secret")

    def _authenticate(self, tenant: Tenant, client_id: str, secret: str | None, grant: str) -> Client:
        client = next((c for cid, c in tenant.clients.items() if cid.lower() == client_id.lower()), None)
        if client is None:
            raise unknown_client(client_id, tenant.display_name)
        if not secret:
            if grant == "client_credentials" or client.secrets:
                raise AadError(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or "
                    "'client_secret'.",
                )
            return client
        if not any(secrets.compare_digest(secret.encode(), s.encode()) for s in client.secrets):
            raise AadError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app "
                f"'{client.client_id}'.",
            )
        return client

    async def token_endpoint(
        self, request: web.Request, segment: str
    ) -> tuple[web.Response, str | None, str | None]:
        """Returns (response, tenant id, client id) for the request log."""
        tenant_id: str | None = None
        client_id: str | None = None
        try:
            if request.method != "POST":
                raise AadError(
                    400,
                    "invalid_request",
                    900561,
                    f"The endpoint only accepts POST, OPTIONS requests. Received a {request.method} request.",
                )
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
            grant = form.get("grant_type")
            if not grant:
                raise missing_parameter("grant_type")
            client_id, secret = self._client_auth(request, form)
            if not client_id:
                raise missing_parameter("client_id")
            base = self.sim.base_url(request)
            tenant = self.sim.resolve_tenant(segment)
            seg = segment.lower()
            if tenant is None and seg not in MULTI_TENANT_SEGMENTS - {"consumers"}:
                raise unknown_tenant(segment)
            if grant == "client_credentials":
                if tenant is None:
                    raise AadError(
                        400,
                        "invalid_request",
                        9001023 if seg == "common" else 90019,
                        "The grant type isn't supported over the /common or /consumers endpoints. "
                        "Please use the /organizations or tenant-specific endpoint."
                        if seg == "common"
                        else "No tenant-identifying information found in either the request or implied by "
                        "any provided credentials.",
                    )
                tenant_id = tenant.tenant_id
                client = self._authenticate(tenant, client_id, secret, grant)
                body = self._client_credentials(base, tenant, client, form.get("scope"))
            elif grant == "authorization_code":
                body, tenant_id = self._redeem_code(base, tenant, client_id, secret, form)
            elif grant == "refresh_token":
                body, tenant_id = self._redeem_refresh(base, tenant, client_id, secret, form)
            else:
                raise AadError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{grant}'.",
                )
            if form.get("client_info") == "1" and "id_token" in body:
                claims = jwt.decode(body["id_token"], options={"verify_signature": False})
                body["client_info"] = _b64url(
                    json.dumps({"uid": claims["oid"], "utid": claims["tid"]}).encode()
                )
            return (
                web.json_response(
                    body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
                ),
                tenant_id,
                client_id,
            )
        except AadError as err:
            return aad_error_response(self.sim, err), tenant_id, client_id

    def _client_credentials(
        self, base: str, tenant: Tenant, client: Client, scope: str | None
    ) -> dict[str, Any]:
        if not scope:
            raise missing_parameter("scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            # AADSTS1002012 is what Entra answers a client-credentials scope without /.default.
            raise AadError(
                400,
                "invalid_scope",
                1002012 if len(scopes) == 1 else 70011,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI)."
                if len(scopes) == 1
                else f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is "
                "not valid.",
            )
        aud = self.resolve_resource(tenant, scopes[0][: -len("/.default")])
        if aud in (GRAPH_RESOURCE, GRAPH_APP_ID):
            roles = client.roles
        else:
            # howto-add-app-roles-in-apps: the token carries the app roles granted to the caller on the API it is
            # for; access_token() leaves ``roles`` out when there are none (claims are "present only if a value
            # exists to fill it", access-token-claims-reference).
            roles = client.app_role_assignments.get(aud.lower(), [])
        token = self.access_token(base, tenant, client, aud, roles=roles)
        return {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME_S,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME_S,
            "access_token": token,
        }

    # ----------------------------------------------------------------- delegated flows
    def _split_scopes(self, tenant: Tenant, client: Client, scopes: list[str]) -> tuple[str, str, list[str]]:
        """(aud, scp claim, granted scopes as the response's ``scope``) for delegated scopes."""
        resource_scopes = [s for s in scopes if s.lower() not in OIDC_SCOPES]
        resources: dict[str, list[str]] = {}
        for s in resource_scopes:
            if "/" in s:
                res, _, perm = s.rpartition("/")
            elif _GUID.match(s):
                raise AadError(
                    400,
                    "invalid_scope",
                    70011,
                    f"The provided value for the input parameter 'scope' is not valid. The scope {s} "
                    "is not valid.",
                )
            else:
                res, perm = GRAPH_RESOURCE, s  # unqualified scopes are Microsoft Graph's
            resources.setdefault(self.resolve_resource(tenant, res), []).append(perm)
        if len(resources) > 1:
            raise AadError(
                400,
                "invalid_scope",
                28000,
                "Provided value for the input parameter scope is not valid because it contains more "
                "than one resource. Scope " + " ".join(scopes) + " is not valid.",
            )
        oidc = [s for s in scopes if s.lower() in OIDC_SCOPES - {"offline_access"}]
        if not resources:
            return GRAPH_RESOURCE, " ".join(oidc), scopes
        aud, perms = next(iter(resources.items()))
        granted: list[str] = []
        for p in perms:
            granted.extend(client.scopes if p == ".default" else [p])
        return aud, " ".join(dict.fromkeys(granted + oidc)), scopes

    def _delegated_tokens(
        self,
        base: str,
        tenant: Tenant,
        client: Client,
        user: User,
        scopes: list[str],
        nonce: str | None,
        auth_time: float,
    ) -> dict[str, Any]:
        aud, scp, granted = self._split_scopes(tenant, client, scopes)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in granted if s.lower() != "offline_access"),
            "expires_in": ACCESS_TOKEN_LIFETIME_S,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME_S,
            "access_token": self.access_token(base, tenant, client, aud, scp=scp, user=user),
        }
        rt = "1." + _b64url(secrets.token_bytes(96))
        self.refresh_tokens[rt] = RefreshToken(
            tenant.tenant_id,
            client.client_id,
            user,
            list(scopes),
            issued=self.sim.clock(),
            auth_time=auth_time,
        )
        body["refresh_token"] = rt
        if "openid" in {s.lower() for s in scopes}:
            body["id_token"] = self.id_token(base, tenant, client, user, nonce)
        return body

    @staticmethod
    def _find_grant(
        store: dict[str, Grant], form: dict[str, str], param: str, tenant: Tenant | None
    ) -> Grant:
        """The code or refresh token a token request presents in ``param``; unknown, or issued in another tenant
        than the one addressed, is AADSTS9002313."""
        value = form.get(param)
        if not value:
            raise missing_parameter(param)
        grant = store.get(value)
        if grant is None or (tenant is not None and grant.tenant_id != tenant.tenant_id):
            raise AadError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        return grant

    def _grant_client(
        self,
        tenant: Tenant,
        client_id: str,
        secret: str | None,
        grant_type: str,
        grant: AuthCode | RefreshToken,
    ) -> Client:
        """The authenticated client redeeming ``grant``; a grant issued to another client is AADSTS70000."""
        client = self._authenticate(tenant, client_id, secret, grant_type)
        if grant.client_id.lower() != client.client_id.lower():
            raise AadError(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
        return client

    def _redeem_code(
        self, base: str, tenant: Tenant | None, client_id: str, secret: str | None, form: dict[str, str]
    ) -> tuple[dict[str, Any], str | None]:
        code = self._find_grant(self.codes, form, "code", tenant)
        real_tenant = self.sim.tenants[code.tenant_id]
        client = self._grant_client(real_tenant, client_id, secret, "authorization_code", code)
        if code.used:
            raise AadError(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
                "use an existing refresh token.",
            )
        if self.sim.clock() > code.issued + CODE_LIFETIME_S:
            raise AadError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a "
                "new interactive authorization request for this user and resource.",
            )
        if form.get("redirect_uri") != code.redirect_uri:
            raise AadError(
                400,
                "invalid_grant",
                50148 if not form.get("redirect_uri") else 500117,
                "The redirect_uri in the token request does not match the one used to obtain the "
                "authorization code.",
            )
        if code.challenge:
            verifier = form.get("code_verifier")
            if not verifier:
                raise AadError(
                    400,
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the authorization "
                    "request for PKCE.",
                )
            computed = (
                _b64url(hashlib.sha256(verifier.encode()).digest())
                if code.challenge_method == "S256"
                else verifier
            )
            if not secrets.compare_digest(computed.encode(), code.challenge.encode()):
                raise AadError(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization "
                    "request.",
                )
        code.used = True
        scopes = form.get("scope", "").split() or code.scopes
        return (
            self._delegated_tokens(base, real_tenant, client, code.user, scopes, code.nonce, code.issued),
            real_tenant.tenant_id,
        )

    def _redeem_refresh(
        self, base: str, tenant: Tenant | None, client_id: str, secret: str | None, form: dict[str, str]
    ) -> tuple[dict[str, Any], str | None]:
        rt = self._find_grant(self.refresh_tokens, form, "refresh_token", tenant)
        real_tenant = self.sim.tenants.get(rt.tenant_id)
        if real_tenant is None:
            raise unknown_tenant(rt.tenant_id)
        client = self._grant_client(real_tenant, client_id, secret, "refresh_token", rt)
        now = self.sim.clock()
        if now > rt.issued + REFRESH_TOKEN_LIFETIME_S:
            issued = dt.datetime.fromtimestamp(rt.issued, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
            inactive = dt.timedelta(seconds=int(now - rt.issued))
            raise AadError(
                400,
                "invalid_grant",
                700082,
                f"The refresh token has expired due to inactivity. The token was issued on {issued} and "
                f"was inactive for {inactive}.",
            )
        # Each use returns a new refresh token, but Entra does not revoke the old one: it stays valid until its own
        # lifetime ends (learn.microsoft.com/en-us/answers/questions/1158831: "The Microsoft identity platform
        # doesn't revoke old refresh tokens when used to fetch new access tokens.").
        if self._sessions_revoked(real_tenant, rt):
            raise AadError(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
                "The user might have changed or reset their password.",
            )
        scopes = form.get("scope", "").split() or rt.scopes
        return (
            self._delegated_tokens(base, real_tenant, client, rt.user, scopes, None, rt.auth_time),
            real_tenant.tenant_id,
        )

    def _sessions_revoked(self, tenant: Tenant, rt: RefreshToken) -> bool:
        """user-revokesigninsessions: refresh tokens issued before signInSessionsValidFromDateTime are void."""
        resp = self.sim.directory_get(
            tenant, f"/users/{rt.user.id}", {"$select": "id,signInSessionsValidFromDateTime"}
        )
        if resp is None or resp.status != 200 or not isinstance(resp.body, dict):
            return False
        valid_from = resp.body.get("signInSessionsValidFromDateTime")
        if not isinstance(valid_from, str):
            return False
        try:
            ts = dt.datetime.fromisoformat(valid_from.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return False
        return ts > rt.auth_time + 1

    # ----------------------------------------------------------------- /authorize
    async def authorize(self, request: web.Request, segment: str) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        base = self.sim.base_url(request)
        try:
            tenant = self.sim.resolve_tenant(segment)
            seg = segment.lower()
            if tenant is None and seg not in MULTI_TENANT_SEGMENTS - {"consumers"}:
                raise unknown_tenant(segment)
            client_id = params.get("client_id")
            if not client_id:
                raise missing_parameter("client_id")
            if tenant is None:
                tenant = self._tenant_for(client_id, params.get("login_hint"))
                if tenant is None:
                    raise unknown_client(client_id, segment)
            client = next((c for cid, c in tenant.clients.items() if cid.lower() == client_id.lower()), None)
            if client is None:
                raise unknown_client(client_id, tenant.display_name)
            redirect_uri = params.get("redirect_uri")
            if not redirect_uri and len(client.redirect_uris) == 1:
                redirect_uri = client.redirect_uris[0]
            if not redirect_uri or not self._redirect_allowed(client, redirect_uri):
                raise AadError(
                    400,
                    "invalid_request",
                    50011,
                    f"The redirect URI '{redirect_uri or ''}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{client.client_id}'. Make sure "
                    "the redirect URI sent in the request matches one added to your application in the "
                    "Azure portal.",
                )
        except AadError as err:
            return self._error_page(err)
        # From here on the redirect URI is trusted: errors go back to it (v2-oauth2-auth-code-flow "Error response").
        state = params.get("state")
        mode = params.get("response_mode", "query")
        try:
            if params.get("response_type") != "code":
                raise AadError(
                    400,
                    "unsupported_response_type",
                    70005,
                    "The provided value for the input parameter 'response_type' is not allowed for this "
                    f"request. Expected value: 'code'. Actual value: '{params.get('response_type', '')}'.",
                )
            if mode not in ("query", "fragment", "form_post"):
                raise AadError(
                    400,
                    "invalid_request",
                    70007,
                    f"The provided value for the input parameter 'response_mode' is not valid: '{mode}'.",
                )
            scope = params.get("scope")
            if not scope:
                raise missing_parameter("scope")
            method = params.get("code_challenge_method", "plain" if params.get("code_challenge") else "")
            if params.get("code_challenge") and method not in ("S256", "plain"):
                raise AadError(
                    400, "invalid_request", 501491, f"The code_challenge_method '{method}' is not supported."
                )
            self._split_scopes(tenant, client, scope.split())  # validates resources
            user = self._sign_in(base, tenant, params.get("login_hint"), params.get("prompt"))
        except AadError as err:
            return self._redirect(
                redirect_uri,
                mode,
                {
                    "error": err.error,
                    "error_description": f"AADSTS{err.code}: {err.message}",
                    **({"state": state} if state else {}),
                },
            )
        code_value = "1.A" + _b64url(secrets.token_bytes(120))
        self.codes[code_value] = AuthCode(
            tenant.tenant_id,
            client.client_id,
            redirect_uri,
            scope.split(),
            params.get("nonce"),
            params.get("code_challenge"),
            method or "plain",
            user,
            issued=self.sim.clock(),
        )
        out = {"code": code_value}
        if state is not None:
            out["state"] = state
        out["session_state"] = str(uuid.uuid4())
        return self._redirect(redirect_uri, mode, out)

    def _tenant_for(self, client_id: str, login_hint: str | None) -> Tenant | None:
        if login_hint and "@" in login_hint:
            t = self.sim.resolve_tenant(login_hint.rsplit("@", 1)[1])
            if t is not None:
                return t
        owners = [t for t in self.sim.tenants.values() if client_id.lower() in {c.lower() for c in t.clients}]
        return owners[0] if len(owners) == 1 else None

    @staticmethod
    def _redirect_allowed(client: Client, redirect_uri: str) -> bool:
        if client.redirect_uris:
            return redirect_uri in client.redirect_uris
        u = urllib.parse.urlsplit(redirect_uri)
        return u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost")

    def _sign_in(self, base: str, tenant: Tenant, login_hint: str | None, prompt: str | None) -> User:
        """The dev consent: the login_hint's user (must exist), else the tenant's first user."""
        if login_hint:
            resp = self.sim.directory_get(
                tenant, f"/users/{login_hint}", {"$select": "id,userPrincipalName,displayName"}
            )
            if resp is None or resp.status != 200 or not isinstance(resp.body, dict):
                raise AadError(
                    400,
                    "invalid_request",
                    50034,
                    f"The user account {login_hint} does not exist in the {tenant.display_name} "
                    "directory. To sign into this application, the account must be added to the "
                    "directory.",
                )
            b = resp.body
            return User(
                str(b["id"]),
                str(b.get("userPrincipalName") or login_hint),
                str(b.get("displayName") or login_hint),
            )
        if prompt == "none":
            raise AadError(
                400, "login_required", 50058, "A silent sign-in request was sent but no user is signed in."
            )
        resp = self.sim.directory_get(
            tenant, "/users", {"$top": "1", "$select": "id,userPrincipalName,displayName"}
        )
        if resp is not None and resp.status == 200 and isinstance(resp.body, dict) and resp.body.get("value"):
            b = resp.body["value"][0]
            return User(str(b["id"]), str(b.get("userPrincipalName")), str(b.get("displayName")))
        upn = f"admin@{tenant.default_domain()}"
        return User(str(uuid.uuid5(uuid.UUID(int=1), f"{tenant.tenant_id}:{upn}")), upn, "Dev Admin")

    @staticmethod
    def _redirect(uri: str, mode: str, params: dict[str, str]) -> web.Response:
        if mode == "form_post":
            inputs = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
                for k, v in params.items()
            )
            page = (
                f'<html><body onload="document.forms[0].submit()"><form method="POST" '
                f'action="{html.escape(uri)}">{inputs}</form></body></html>'
            )
            return web.Response(text=page, content_type="text/html")
        sep = "#" if mode == "fragment" else ("&" if "?" in uri else "?")
        return web.Response(status=302, headers={"Location": uri + sep + urllib.parse.urlencode(params)})

    def _error_page(self, err: AadError) -> web.Response:
        body = aad_error_body(self.sim, err)
        page = (
            "<html><head><title>Sign in to your account</title></head><body><h1>Sorry, but we're having "
            f"trouble signing you in.</h1><p>{html.escape(body['error_description'])}</p></body></html>"
        )
        return web.Response(status=400, text=page, content_type="text/html")

    # ----------------------------------------------------------------- resource side
    def validate(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        """Check an access token as a resource does. Raises TokenInvalid(reason)."""
        try:
            claims = self.verify(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("signature") from exc
        now = self.sim.clock()
        skew = 300  # resources allow five minutes of clock skew
        if not isinstance(claims.get("exp"), int | float) or now > claims["exp"] + skew:
            raise TokenInvalid("expired")
        if isinstance(claims.get("nbf"), int | float) and now + skew < claims["nbf"]:
            raise TokenInvalid("not_yet_valid")
        if claims.get("aud") not in audiences:
            raise TokenInvalid("audience")
        tid = claims.get("tid")
        iss = str(claims.get("iss", ""))
        if not isinstance(tid, str) or tid not in self.sim.tenants or not iss.endswith(f"/{tid}/v2.0"):
            raise TokenInvalid("issuer")
        return claims


def token_client_id(claims: dict[str, Any]) -> str:
    """The client (application) id an access token was issued to: v1 ``appid``, v2 ``azp``. The simulator's
    tokens carry both, with the same value."""
    return str(claims.get("appid") or claims.get("azp"))


class TokenInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
