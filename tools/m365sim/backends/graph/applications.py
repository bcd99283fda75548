"""A tenant's app registrations (``/applications``) and their credentials, with each app's service principal.

- application resource: https://learn.microsoft.com/en-us/graph/api/resources/application (``id`` object id,
  ``appId`` client id, ``identifierUris``, ``appRoles``, ``web.redirectUris``, ``passwordCredentials``,
  ``keyCredentials``);
- application-get (by ``/applications/{id}`` or ``/applications(appId='{appId}')``, ``$select``), application-list;
- application-addpassword (200 with the passwordCredential; ``secretText`` "only returned during the initial POST
  request to addPassword"; ``endDateTime`` defaults to "startDateTime + 2 years", ``startDateTime`` to now),
  application-removepassword (204), resources/passwordcredential (``hint``: "the first three characters of the
  password");
- keyCredentials (resources/keycredential): certificates (``AsymmetricX509Cert``, usage ``Verify``), set with
  application-update; ``key`` "Returned only on $select for a single object ... otherwise, it's always null".

The secrets themselves are kept only as SHA-256 digests: nothing can read a secret back, as in Entra.
The token endpoint (``tools.m365sim.backends.entra``) authenticates clients against these credentials and their
validity windows on the simulator's clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tools.m365sim.backends.clock import Clock, iso, parse_iso
from tools.m365sim.backends.graph.errors import bad_request, invalid_property, invalid_value, not_found
from tools.m365sim.backends.graph.store import Data

TWO_YEARS = 2 * 365 * 86400
APP_SELECTABLE = (
    "id",
    "appId",
    "displayName",
    "createdDateTime",
    "identifierUris",
    "appRoles",
    "web",
    "signInAudience",
    "passwordCredentials",
    "keyCredentials",
    "requiredResourceAccess",
)
APP_DEFAULT = APP_SELECTABLE
APP_PROPERTIES = {n.lower(): n for n in APP_SELECTABLE}
APP_UPDATABLE = frozenset({"displayName", "keyCredentials"})
KEY_CREDENTIAL_FIELDS = frozenset(
    {"keyId", "type", "usage", "key", "displayName", "startDateTime", "endDateTime", "customKeyIdentifier"}
)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class PasswordCredential:
    key_id: str
    hint: str
    start: float
    end: float
    digest: str
    display_name: str | None = None

    def graph(self) -> Data:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": None,
            "startDateTime": iso(self.start),
        }


@dataclass
class KeyCredential:
    key_id: str
    der: str
    """The certificate, base64 DER (Graph's ``key``)."""
    start: float
    end: float
    display_name: str | None = None

    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(base64.b64decode(self.der))

    def thumbprints(self) -> tuple[str, str]:
        """(x5t, x5t#S256): base64url SHA-1 and SHA-256 of the DER (RFC 7515 4.1.7 / 4.1.8)."""
        cert = self.certificate()
        return b64url(cert.fingerprint(hashes.SHA1())), b64url(cert.fingerprint(hashes.SHA256()))

    def graph(self, with_key: bool) -> Data:
        sha1 = self.certificate().fingerprint(hashes.SHA1())
        return {
            "customKeyIdentifier": base64.b64encode(sha1).decode(),
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "key": self.der if with_key else None,
            "keyId": self.key_id,
            "startDateTime": iso(self.start),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }


@dataclass
class AppRegistration:
    """An app registration and its service principal in one tenant."""

    app_id: str
    object_id: str
    display_name: str
    created: float
    roles: list[str] = field(default_factory=list)
    """Microsoft Graph application permissions granted (admin consent): the ``roles`` of its Graph tokens."""
    redirect_uris: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=lambda: ["User.Read"])
    """Delegated permissions consented for the app (what ``<resource>/.default`` grants a user)."""
    key_vault_access: bool = True
    """Whether the app holds a data-plane role on the simulated vault (else Key Vault answers 403)."""
    identity_header: str | None = None
    """Set: the app is an App Service app's managed identity, its local token endpoint answering this header."""
    identifier_uris: list[str] = field(default_factory=list)
    """The App ID URIs of this app as an API (reference-app-manifest, identifierUris)."""
    app_roles: list[str] = field(default_factory=list)
    """The ``value`` of each app role this app defines as an API (allowedMemberTypes Application)."""
    app_role_assignments: dict[str, list[str]] = field(default_factory=dict)
    """Roles granted to this app's service principal on another app of the tenant: resource app id → values."""
    user_app_roles: dict[str, list[str]] = field(default_factory=dict)
    """Roles of this app (as an API) assigned to users: user object id → values (``appRoleAssignedTo`` with a user
    principal). A user's delegated tokens for this API, and the ID tokens this app receives, carry them in ``roles``
    (howto-add-app-roles-in-apps: "the roles claim ... for users and groups assigned")."""
    passwords: list[PasswordCredential] = field(default_factory=list)
    keys: list[KeyCredential] = field(default_factory=list)

    def service_principal_id(self, tenant_id: str) -> str:
        return str(uuid.uuid5(uuid.UUID(int=0), f"sp:{tenant_id}:{self.app_id}"))

    def graph(self, *, with_keys: bool = False) -> Data:
        return {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "createdDateTime": iso(self.created),
            "identifierUris": list(self.identifier_uris),
            "appRoles": [
                {
                    "allowedMemberTypes": ["User", "Application"],
                    "description": role,
                    "displayName": role,
                    "id": str(uuid.uuid5(uuid.UUID(self.object_id), role)),
                    "isEnabled": True,
                    "origin": "Application",
                    "value": role,
                }
                for role in self.app_roles
            ],
            "web": {"redirectUris": list(self.redirect_uris)},
            "signInAudience": "AzureADMyOrg",
            "passwordCredentials": [p.graph() for p in self.passwords],
            "keyCredentials": [k.graph(with_keys) for k in self.keys],
            "requiredResourceAccess": [],
        }


def new_password(secret_text: str, start: float, end: float, display_name: str | None) -> PasswordCredential:
    return PasswordCredential(
        key_id=str(uuid.uuid4()),
        hint=secret_text[:3],
        start=start,
        end=end,
        digest=secret_digest(secret_text),
        display_name=display_name,
    )


def add_secret(app: AppRegistration, secret_text: str, start: float, end: float) -> bool:
    """A secret given by the control API; False when the app already holds that secret (nothing added)."""
    digest = secret_digest(secret_text)
    if any(secrets.compare_digest(p.digest, digest) for p in app.passwords):
        return False
    app.passwords.append(new_password(secret_text, start, end, None))
    return True


def key_credential(raw: Any, existing: dict[str, KeyCredential]) -> KeyCredential:
    """One entry of a keyCredentials PATCH: an existing credential by ``keyId`` (kept as it is, as Graph requires
    the whole collection), or a new certificate in ``key`` (base64 DER), its window defaulting to the
    certificate's validity."""
    if not isinstance(raw, dict):
        raise invalid_value("keyCredentials", "Application")
    raw = {k: v for k, v in raw.items() if k != "@odata.type"}
    for name in raw:
        if name not in KEY_CREDENTIAL_FIELDS:
            raise invalid_property(name)
    key_id = raw.get("keyId")
    if isinstance(key_id, str) and key_id.lower() in existing and not raw.get("key"):
        return existing[key_id.lower()]
    if (
        raw.get("type", "AsymmetricX509Cert") != "AsymmetricX509Cert"
        or raw.get("usage", "Verify") != "Verify"
    ):
        # Only certificates for signing client assertions are modelled; other key types are refused, not stored.
        raise invalid_value("keyCredentials", "Application")
    try:
        der = base64.b64decode(str(raw.get("key", "")), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise invalid_value("keyCredentials", "Application") from None
    not_before = cert.not_valid_before_utc.timestamp()
    not_after = cert.not_valid_after_utc.timestamp()
    start = parse_iso(raw["startDateTime"]) if raw.get("startDateTime") else not_before
    end = parse_iso(raw["endDateTime"]) if raw.get("endDateTime") else not_after
    if start is None or end is None or start < not_before or end > not_after or end <= start:
        raise invalid_value("keyCredentials", "Application")
    return KeyCredential(
        key_id=str(key_id).lower() if isinstance(key_id, str) and key_id else str(uuid.uuid4()),
        der=base64.b64encode(der).decode(),
        start=start,
        end=end,
        display_name=raw.get("displayName") or cert.subject.rfc4514_string(),
    )


class ApplicationsBackend:
    """One tenant's app registrations, by object id and by appId (client id)."""

    def __init__(self, tenant_id: str, clock: Clock) -> None:
        self.tenant_id = tenant_id
        self.clock = clock
        self.apps: dict[str, AppRegistration] = {}
        """appId (lower case) → the registration."""

    # -- reads ------------------------------------------------------------------------------------------------
    def all(self) -> list[AppRegistration]:
        return sorted(self.apps.values(), key=lambda a: a.object_id)

    def by_app_id(self, app_id: str) -> AppRegistration | None:
        return self.apps.get(app_id.lower())

    def get(self, key: str) -> AppRegistration:
        """``{id}`` or ``(appId='{appId}')`` / ``appId={appId}`` (application-get's alternate key)."""
        lowered = key.lower()
        if lowered.startswith("appid="):
            app = self.by_app_id(lowered.partition("=")[2].strip("'"))
        else:
            app = next((a for a in self.apps.values() if a.object_id == lowered), None)
        if app is None:
            raise not_found(key)
        return app

    def find(self, resource: str) -> AppRegistration | None:
        """The app a resource names, by one of its App ID URIs or by its application (client) id; both compare
        case-insensitively, a trailing slash ignored."""
        r = resource.rstrip("/").lower()
        for app in self.apps.values():
            if r == app.app_id or r in (u.rstrip("/").lower() for u in app.identifier_uris):
                return app
        return None

    def by_service_principal(self, sp_id: str) -> AppRegistration | None:
        return next((a for a in self.apps.values() if a.service_principal_id(self.tenant_id) == sp_id), None)

    def service_principal(self, app: AppRegistration) -> Data:
        """The app's servicePrincipal as a directoryObject (https://learn.microsoft.com/en-us/graph/api/resources/
        serviceprincipal): what ``$expand=principal`` shows for an app holding a role."""
        return {
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "id": app.service_principal_id(self.tenant_id),
            "appId": app.app_id,
            "displayName": app.display_name,
            "accountEnabled": True,
            "servicePrincipalType": "Application",
        }

    # -- writes -----------------------------------------------------------------------------------------------
    def register(self, app: AppRegistration) -> AppRegistration:
        self.apps[app.app_id] = app
        return app

    def add_password(self, key: str, body: Data) -> tuple[PasswordCredential, str]:
        """application-addpassword: the new credential and its secretText (shown once)."""
        app = self.get(key)
        spec = body.get("passwordCredential", {}) if isinstance(body, dict) else None
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise invalid_value("passwordCredential", "Application")
        for name in spec:
            if name not in ("displayName", "startDateTime", "endDateTime"):
                raise invalid_property(name)
        now = self.clock()
        start = parse_iso(spec["startDateTime"]) if spec.get("startDateTime") else now
        if start is None:
            raise invalid_value("startDateTime", "PasswordCredential")
        end = parse_iso(spec["endDateTime"]) if spec.get("endDateTime") else start + TWO_YEARS
        if end is None or end <= start:
            raise invalid_value("endDateTime", "PasswordCredential")
        name = spec.get("displayName")
        if name is not None and not isinstance(name, str):
            raise invalid_value("displayName", "PasswordCredential")
        secret_text = secrets.token_urlsafe(30)  # 40 characters, within the documented 16-64
        credential = new_password(secret_text, start, end, name)
        app.passwords.append(credential)
        return credential, secret_text

    def remove_password(self, key: str, body: Data) -> None:
        """application-removepassword (204). An unknown keyId is refused (400; Microsoft documents no wording)."""
        app = self.get(key)
        key_id = body.get("keyId") if isinstance(body, dict) else None
        if not isinstance(key_id, str) or not key_id:
            raise bad_request("Property keyId value is required but is empty or missing.")
        remaining = [p for p in app.passwords if p.key_id != key_id.lower()]
        if len(remaining) == len(app.passwords):
            raise bad_request(f"No password credential with keyId '{key_id}' exists on the application.")
        app.passwords = remaining

    def update(self, key: str, body: Data) -> None:
        """application-update (204): ``displayName``, and ``keyCredentials`` (the whole collection). Other
        properties of the resource are not modelled here and are refused rather than ignored."""
        app = self.get(key)
        for name in body:
            if name not in APP_UPDATABLE:
                raise bad_request(
                    f"Property '{name}' of application cannot be updated in the simulated cloud."
                )
        if "displayName" in body:
            if not isinstance(body["displayName"], str) or not body["displayName"]:
                raise invalid_value("displayName", "Application")
            app.display_name = body["displayName"]
        if "keyCredentials" in body:
            raw = body["keyCredentials"]
            if not isinstance(raw, list):
                raise invalid_value("keyCredentials", "Application")
            existing = {k.key_id: k for k in app.keys}
            app.keys = [key_credential(item, existing) for item in raw]

    # -- persistence ------------------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(app) for app in self.all()]

    def restore(self, state: list[dict[str, Any]]) -> None:
        self.apps = {}
        for raw in state:
            app = AppRegistration(
                **{k: v for k, v in raw.items() if k not in ("passwords", "keys")},
                passwords=[PasswordCredential(**p) for p in raw["passwords"]],
                keys=[KeyCredential(**k) for k in raw["keys"]],
            )
            self.apps[app.app_id] = app
