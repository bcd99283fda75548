"""The control plane behind ``/_sim``: what a test or ``make run`` may set up that a real tenant's admin would do
in the portal (create a tenant and its app registrations, seed users, assign roles, change policies, withdraw
consents) plus the simulator's own knobs (the clock, signing keys). Bodies are plain JSON values; every refusal is
a ``ControlError`` naming the field.

A client (``clients[i]``) is an app registration with its service principal:
- ``clientId`` (GUID, required), ``clientSecret`` / ``clientSecrets`` (strings, or ``{"secretText", "displayName"?,
  "startDateTime"?, "endDateTime"?}``; a secret is valid from now for two years unless said otherwise, as
  application-addpassword's defaults), ``keyCredentials`` (``[{"certificatePem" | "key", "startDateTime"?,
  "endDateTime"?}]``: certificates for client assertions), ``displayName``, ``redirectUris``, ``scopes`` (delegated,
  what ``<resource>/.default`` grants a user), ``keyVaultAccess`` (default true), ``roles`` (Microsoft Graph
  application permissions: the ``roles`` of its client-credentials Graph tokens), ``identityHeader`` (a string:
  the client stands for an App Service app's managed identity, whose local token endpoint ``/msi/token`` answers
  requests carrying it as ``X-IDENTITY-HEADER``, the platform's ``IDENTITY_HEADER``);
- as an API (https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps):
  ``identifierUris`` (App ID URIs, ``api://`` or ``https://``, unique in the tenant) and ``appRoles`` (the role
  values it defines, allowedMemberTypes Application; no spaces);
- ``appRoleAssignments``: ``{"<resource clientId or identifier URI>": ["Role", ...]}`` - app roles granted to
  this client's service principal on another app of the same tenant, each defined by that app (400 otherwise).
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tools.m365sim.backends.clock import iso, parse_iso
from tools.m365sim.backends.errors import ControlError, GraphError
from tools.m365sim.backends.graph.applications import TWO_YEARS, AppRegistration, add_secret, key_credential
from tools.m365sim.backends.graph.roles import DEFINITIONS, ROLE_DEFINITIONS
from tools.m365sim.backends.tenants import GRAPH_APP_ID, GRAPH_RESOURCE, VAULT_RESOURCE, Tenant
from tools.m365sim.backends.world import World

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
MAX_SEED_USERS = 20_000
MAX_CLOCK_OFFSET = 10 * 365 * 86400
RESERVED_RESOURCES = frozenset({GRAPH_RESOURCE, GRAPH_APP_ID, VAULT_RESOURCE})
TENANT_KEYS = {
    "tenantId",
    "displayName",
    "domains",
    "onPremisesSyncEnabled",
    "clients",
    "seedUsers",
    "keyVault",
}
CLIENT_KEYS = {
    "clientId",
    "clientSecret",
    "clientSecrets",
    "keyCredentials",
    "roles",
    "redirectUris",
    "scopes",
    "displayName",
    "keyVaultAccess",
    "identityHeader",
    "identifierUris",
    "appRoles",
    "appRoleAssignments",
}


# -- small parsers ------------------------------------------------------------------------------------------------
def as_object(body: Any, shape: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError(f"the body must be {shape}")
    return body


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key, default)
    if not isinstance(v, bool):
        raise ControlError(f"'{key}' must be true or false")
    return v


def no_unknown_keys(raw: dict[str, Any], known: set[str], where: str = "") -> None:
    """Refuse keys outside ``known``, naming both; ``where`` prefixes the message (``"clients[0]: "``)."""
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ControlError(f"{where}unknown keys {unknown}; known: {sorted(known)}")


def str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise ControlError(f"{what} must be a list of non-empty strings")
    return list(value)


def guid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not GUID.match(value):
        raise ControlError(f"{what} must be a GUID")
    return value.lower()


def on_premises_sync(body: dict[str, Any]) -> bool | None:
    """organization.onPremisesSyncEnabled: true, false or null (absent = null, never synced)."""
    v = body.get("onPremisesSyncEnabled")
    if v is not None and not isinstance(v, bool):
        raise ControlError("'onPremisesSyncEnabled' must be true, false or null")
    return v


def timestamp(raw: dict[str, Any], key: str, default: float, what: str) -> float:
    if raw.get(key) is None:
        return default
    value = parse_iso(raw[key])
    if value is None:
        raise ControlError(
            f"{what}.{key} must be an ISO 8601 timestamp with a zone, like 2027-01-04T00:00:00Z"
        )
    return value


# -- clients ------------------------------------------------------------------------------------------------------
def identifier_uris(raw: dict[str, Any], i: int) -> list[str]:
    """App ID URIs (reference-app-manifest "identifierUris attribute"); ``api://`` or ``https://`` and something
    after it, no whitespace, and not a Microsoft resource the simulator serves itself."""
    uris = str_list(raw.get("identifierUris", []), f"clients[{i}].identifierUris")
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
        if uri.rstrip("/").lower() in RESERVED_RESOURCES:
            raise ControlError(f"clients[{i}].identifierUris: '{uri}' is a Microsoft resource")
    return uris


def app_roles(raw: dict[str, Any], i: int) -> list[str]:
    """App role values, compared exactly (howto-add-app-roles-in-apps: the value "should exactly match the string
    referenced in the application's code. The value can't contain spaces")."""
    roles = str_list(raw.get("appRoles", []), f"clients[{i}].appRoles")
    for role in roles:
        if any(c.isspace() for c in role):
            raise ControlError(f"clients[{i}].appRoles: '{role}' must not contain spaces")
    if len(set(roles)) != len(roles):
        raise ControlError(f"clients[{i}].appRoles must not list a role twice")
    return roles


def raw_assignments(raw: dict[str, Any], i: int) -> dict[str, list[str]]:
    value = raw.get("appRoleAssignments", {})
    if not isinstance(value, dict):
        raise ControlError(
            f'clients[{i}].appRoleAssignments must be an object {{"<resource clientId or identifier URI>": '
            '["Role", ...]}'
        )
    return {key: str_list(roles, f"clients[{i}].appRoleAssignments['{key}']") for key, roles in value.items()}


def client_secrets(raw: dict[str, Any], i: int, now: float) -> list[tuple[str, float, float]]:
    """(secret, start, end) of each secret given."""
    given: list[Any] = []
    if "clientSecret" in raw:
        if not isinstance(raw["clientSecret"], str) or not raw["clientSecret"]:
            raise ControlError(f"clients[{i}].clientSecret must be a non-empty string")
        given.append(raw["clientSecret"])
    if "clientSecrets" in raw:
        if not isinstance(raw["clientSecrets"], list):
            raise ControlError(f"clients[{i}].clientSecrets must be a list")
        given.extend(raw["clientSecrets"])
    out = []
    for j, item in enumerate(given):
        where = f"clients[{i}].clientSecrets[{j}]"
        if isinstance(item, str) and item:
            out.append((item, now, now + TWO_YEARS))
            continue
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("secretText"), str)
            or not item["secretText"]
        ):
            raise ControlError(
                f"{where} must be a non-empty string or an object with a non-empty 'secretText'"
            )
        no_unknown_keys(item, {"secretText", "startDateTime", "endDateTime"}, f"{where}: ")
        start = timestamp(item, "startDateTime", now, where)
        end = timestamp(item, "endDateTime", start + TWO_YEARS, where)
        if end <= start:
            raise ControlError(f"{where}.endDateTime must be after its startDateTime")
        out.append((item["secretText"], start, end))
    return out


def client_certificates(raw: dict[str, Any], i: int) -> list[dict[str, Any]]:
    """keyCredentials as application-update takes them (``key``: base64 DER), from PEM or base64 DER."""
    items = raw.get("keyCredentials", [])
    if not isinstance(items, list):
        raise ControlError(f"clients[{i}].keyCredentials must be a list")
    out = []
    for j, item in enumerate(items):
        where = f"clients[{i}].keyCredentials[{j}]"
        if not isinstance(item, dict):
            raise ControlError(f"{where} must be an object")
        no_unknown_keys(
            item, {"certificatePem", "key", "displayName", "startDateTime", "endDateTime"}, f"{where}: "
        )
        key = item.get("key")
        if "certificatePem" in item:
            try:
                cert = x509.load_pem_x509_certificate(str(item["certificatePem"]).encode())
            except ValueError:
                raise ControlError(f"{where}.certificatePem is not a PEM certificate") from None
            key = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
        if not isinstance(key, str):
            raise ControlError(f"{where} needs 'certificatePem' or 'key' (base64 DER)")
        out.append({k: v for k, v in {**item, "key": key}.items() if k != "certificatePem"})
    return out


def parse_client(
    raw: Any, i: int, now: float, client_id: str | None = None
) -> tuple[AppRegistration, dict[str, list[str]]]:
    """The client and its appRoleAssignments as given (resolved once every client is known)."""
    if not isinstance(raw, dict):
        raise ControlError(f"clients[{i}] must be an object")
    no_unknown_keys(raw, CLIENT_KEYS, f"clients[{i}]: ")
    cid = guid(raw.get("clientId", client_id), f"clients[{i}].clientId")
    if client_id is not None and cid != client_id.lower():
        raise ControlError(f"clients[{i}].clientId must be the client id of the path, {client_id}")
    redirects = str_list(raw.get("redirectUris", []), f"clients[{i}].redirectUris")
    for uri in redirects:
        if not uri.startswith(("https://", "http://localhost", "http://127.0.0.1")):
            raise ControlError(f"clients[{i}].redirectUris: '{uri}' must be https (or http on localhost)")
    name = raw.get("displayName", f"app {cid}")
    if not isinstance(name, str):
        raise ControlError(f"clients[{i}].displayName must be a string")
    app = AppRegistration(
        app_id=cid,
        object_id=str(uuid.uuid5(uuid.UUID(cid), "application")),
        display_name=name,
        created=now,
        roles=str_list(raw.get("roles", []), f"clients[{i}].roles"),
        redirect_uris=redirects,
        scopes=str_list(raw.get("scopes", ["User.Read"]), f"clients[{i}].scopes"),
        key_vault_access=flag(raw, "keyVaultAccess", True),
        identity_header=optional_str(raw, "identityHeader", i),
        identifier_uris=identifier_uris(raw, i),
        app_roles=app_roles(raw, i),
    )
    for secret, start, end in client_secrets(raw, i, now):
        add_secret(app, secret, start, end)
    try:
        app.keys = [key_credential(item, {}) for item in client_certificates(raw, i)]
    except GraphError as exc:
        raise ControlError(f"clients[{i}].keyCredentials: {exc.message}") from None
    return app, raw_assignments(raw, i)


def optional_str(raw: dict[str, Any], key: str, i: int) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ControlError(f"clients[{i}].{key} must be a non-empty string")
    return value


def resolve_assignments(
    apps: list[AppRegistration], raw: list[dict[str, list[str]]], known: list[AppRegistration]
) -> None:
    """Check identifier URIs are unique in the tenant and key each client's assignments by the resource's client
    id, refusing resources outside the tenant and roles the resource does not define. ``known``: every app of the
    tenant (the new ones included)."""
    owner: dict[str, str] = {}
    for app in known:
        for uri in app.identifier_uris:
            key = uri.rstrip("/").lower()
            if key in owner and owner[key] != app.app_id:
                raise ControlError(
                    f"identifier URI '{uri}' is used by two apps ({owner[key]} and {app.app_id}); "
                    "App ID URIs are unique in a tenant"
                )
            owner[key] = app.app_id
    for i, (app, assignments) in enumerate(zip(apps, raw, strict=True)):
        resolved: dict[str, list[str]] = {}
        for key, roles in assignments.items():
            api = find_app(known, key)
            if api is None:
                raise ControlError(
                    f"clients[{i}].appRoleAssignments: '{key}' names no app of this tenant (give the clientId "
                    "or one of the identifierUris of an app in 'clients')"
                )
            for role in roles:
                if role not in api.app_roles:
                    raise ControlError(
                        f"clients[{i}].appRoleAssignments['{key}']: app {api.app_id} defines no app role "
                        f"'{role}' (its appRoles: {api.app_roles})"
                    )
            granted = resolved.setdefault(api.app_id, [])
            granted.extend(r for r in dict.fromkeys(roles) if r not in granted)
        app.app_role_assignments = resolved


def find_app(apps: list[AppRegistration], resource: str) -> AppRegistration | None:
    r = resource.rstrip("/").lower()
    for app in apps:
        if r == app.app_id or r in (u.rstrip("/").lower() for u in app.identifier_uris):
            return app
    return None


def parse_domains(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ControlError("'domains' must be a non-empty list")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise ControlError(f"domains[{i}] must be an object")
        name = d.get("id")
        if not isinstance(name, str) or not DOMAIN.match(name):
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
                "isDefault": flag(d, "isDefault", False),
                "isVerified": flag(d, "isVerified", True),
                "authenticationType": auth,
            }
        )
    defaults = [d for d in out if d["isDefault"]]
    if len(defaults) != 1:
        raise ControlError("exactly one domain must have isDefault: true")
    if not defaults[0]["isVerified"]:
        raise ControlError("the default domain must be verified")
    return out


class Admin:
    """The control plane over one world."""

    def __init__(self, world: World) -> None:
        self.world = world

    def tenant(self, tenant_id: str) -> Tenant:
        tenant = self.world.tenants.get(tenant_id)
        if tenant is None:
            raise ControlError(f"tenant '{tenant_id}' does not exist", 404)
        return tenant

    # -- tenants ----------------------------------------------------------------------------------------------
    def create_tenant(self, body: Any) -> Tenant:
        body = as_object(body, "a JSON object")
        no_unknown_keys(body, TENANT_KEYS)
        tid = guid(body.get("tenantId"), "'tenantId'")
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise ControlError("'displayName' must be a non-empty string")
        domains = parse_domains(body.get("domains"))
        on_prem = on_premises_sync(body)
        raw_clients = body.get("clients", [])
        if not isinstance(raw_clients, list):
            raise ControlError("'clients' must be a list")
        now = self.world.clock()
        parsed = [parse_client(c, i, now) for i, c in enumerate(raw_clients)]
        apps = [a for a, _ in parsed]
        if len({a.app_id for a in apps}) != len(apps):
            raise ControlError("client ids must be unique within a tenant")
        resolve_assignments(apps, [r for _, r in parsed], apps)
        seed = body.get("seedUsers", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED_USERS:
            raise ControlError(f"'seedUsers' must be an integer from 0 to {MAX_SEED_USERS}")
        key_vault = flag(body, "keyVault", False)
        tenants = self.world.tenants
        if tenants.get(tid) is not None:
            raise ControlError(f"tenant '{tid}' already exists", 409)
        for t in tenants.all():
            taken = set(t.domain_names()) & {d["id"].lower() for d in domains}
            if taken:
                raise ControlError(
                    f"domain '{sorted(taken)[0]}' already belongs to tenant {t.tenant_id}", 409
                )
        if key_vault and tenants.vault_tenant_id is not None:
            raise ControlError(
                f"the simulated Key Vault already belongs to tenant {tenants.vault_tenant_id}", 409
            )
        directory = self.world.new_directory(tid, name, domains, on_prem)
        for app in apps:
            directory.applications.register(app)
        if seed:
            directory.seed_users(seed)
        tenant = Tenant(tid, directory)
        tenants.add(tenant, key_vault=key_vault)
        return tenant

    def update_tenant(self, tenant_id: str, body: Any) -> Tenant:
        """``onPremisesSyncEnabled`` (organization resource: a tenant starts or stops syncing from on-premises)."""
        tenant = self.tenant(tenant_id)
        body = as_object(body, '{"onPremisesSyncEnabled": true | false | null}')
        no_unknown_keys(body, {"onPremisesSyncEnabled"})
        if "onPremisesSyncEnabled" in body:
            tenant.directory.organization.on_premises_sync_enabled = on_premises_sync(body)
        return tenant

    def describe(self, t: Tenant, base: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tenantId": t.tenant_id,
            "displayName": t.display_name,
            "domains": [
                {k: d[k] for k in ("id", "isDefault", "isVerified", "authenticationType")}
                for d in t.directory.domains.all()
                if not d["isInitial"] or d["isDefault"]
            ],
            "onPremisesSyncEnabled": t.directory.organization.on_premises_sync_enabled,
            "clients": [self.describe_client(a) for a in t.directory.applications.all()],
            "userCount": t.directory.user_count(),
            "keyVault": self.world.tenants.vault_tenant_id == t.tenant_id,
            "authority": f"{base}/{t.tenant_id}",
            "graphUrl": f"{base}/v1.0",
        }
        if out["keyVault"]:
            out["vaultUrl"] = f"{base}/"
        return out

    @staticmethod
    def describe_client(a: AppRegistration) -> dict[str, Any]:
        """A client without its secrets (their count and validity windows only)."""
        return {
            "clientId": a.app_id,
            "applicationObjectId": a.object_id,
            "roles": a.roles,
            "redirectUris": a.redirect_uris,
            "scopes": a.scopes,
            "secretCount": len(a.passwords),
            "passwordCredentials": [
                {"keyId": p.key_id, "startDateTime": iso(p.start), "endDateTime": iso(p.end)}
                for p in a.passwords
            ],
            "certificateCount": len(a.keys),
            "identifierUris": a.identifier_uris,
            "appRoles": a.app_roles,
            "appRoleAssignments": a.app_role_assignments,
        }

    def upsert_client(self, tenant_id: str, client_id: str, body: Any) -> tuple[AppRegistration, bool]:
        """Create the client, or update it keeping what it has: its secrets and certificates are added to, never
        replaced, so that a credential already in use (in Key Vault, in a running app) stays valid; its other
        settings become the body's. (True, …) when created."""
        tenant = self.tenant(tenant_id)
        cid = guid(client_id, "the path's client id")
        apps = tenant.directory.applications
        given, assignments = parse_client(body, 0, self.world.clock(), cid)
        existing = apps.by_app_id(cid)
        known = [a for a in apps.all() if a.app_id != cid] + [given]
        resolve_assignments([given], [assignments], known)
        if existing is None:
            apps.register(given)
            return given, True
        for password in given.passwords:
            add_secret_digest(existing, password)
        existing_keys = {k.thumbprints() for k in existing.keys}
        existing.keys += [k for k in given.keys if k.thumbprints() not in existing_keys]
        for name in (
            "display_name",
            "roles",
            "redirect_uris",
            "scopes",
            "key_vault_access",
            "identity_header",
            "identifier_uris",
        ):
            setattr(existing, name, getattr(given, name))
        existing.app_roles = given.app_roles
        existing.app_role_assignments = given.app_role_assignments
        return existing, False

    # -- roles -------------------------------------------------------------------------------------------------
    def assign_role(self, tenant_id: str, body: Any) -> dict[str, Any]:
        """``{"principal": <user id | userPrincipalName | group id | clientId>, "role": <template id | display
        name>, "eligible"?: bool, "startDateTime"?, "endDateTime"?}``: an active tenant-wide assignment (as
        rbacapplication-post-roleassignments makes), or a PIM eligibility."""
        tenant = self.tenant(tenant_id)
        body = as_object(body, '{"principal": "...", "role": "..."}')
        no_unknown_keys(body, {"principal", "role", "eligible", "startDateTime", "endDateTime"})
        principal = self._principal(tenant, body.get("principal"))
        role = self._role(body.get("role"))
        directory = tenant.directory
        if not flag(body, "eligible", False):
            if "startDateTime" in body or "endDateTime" in body:
                raise ControlError("'startDateTime' and 'endDateTime' are for eligible assignments")
            try:
                return directory.roles.assign(role, principal)
            except GraphError as exc:
                raise ControlError(exc.message) from None
        now = self.world.clock()
        start = timestamp(body, "startDateTime", now, "body")
        end = timestamp(body, "endDateTime", 0.0, "body") if body.get("endDateTime") else None
        if end is not None and end <= start:
            raise ControlError("'endDateTime' must be after 'startDateTime'")
        return directory.roles.add_eligibility(role, principal, start, end)

    @staticmethod
    def _principal(tenant: Tenant, key: Any) -> dict[str, Any]:
        if not isinstance(key, str) or not key:
            raise ControlError(
                "'principal' must be a user id or userPrincipalName, a group id or a client id"
            )
        directory = tenant.directory
        app = directory.applications.by_app_id(key)
        if app is not None:
            return directory.applications.service_principal(app)
        try:
            user = directory.users.visible(key)
        except GraphError:
            found = directory.principal(key.lower())
            if found is None:
                raise ControlError(
                    f"principal '{key}' is no user, group or client of the tenant", 404
                ) from None
            return found
        return {"@odata.type": "#microsoft.graph.user", **user}

    @staticmethod
    def _role(key: Any) -> str:
        if isinstance(key, str):
            if key.lower() in DEFINITIONS:
                return key.lower()
            for definition in ROLE_DEFINITIONS:
                if definition.display_name.lower() == key.lower():
                    return definition.template_id
        names = sorted(d.display_name for d in ROLE_DEFINITIONS)
        raise ControlError(f"'role' must be a role template id or one of {names}")

    def assign_app_role(self, tenant_id: str, body: Any) -> dict[str, Any]:
        """``{"principal": <user id | userPrincipalName>, "resource": <clientId | identifier URI>, "appRole":
        <value>}``: a user assigned an app role of an API of the tenant, as ``POST
        /servicePrincipals/{resource}/appRoleAssignedTo`` makes it (serviceprincipal-post-approleassignedto);
        assigning it again changes nothing."""
        tenant = self.tenant(tenant_id)
        body = as_object(body, '{"principal": "...", "resource": "...", "appRole": "..."}')
        no_unknown_keys(body, {"principal", "resource", "appRole"})
        principal = self._principal(tenant, body.get("principal"))
        if principal.get("@odata.type") != "#microsoft.graph.user":
            raise ControlError(
                "'principal' must be a user of the tenant (apps get roles in 'appRoleAssignments')"
            )
        resource = body.get("resource")
        api = find_app(tenant.directory.applications.all(), resource) if isinstance(resource, str) else None
        if api is None:
            raise ControlError(f"'resource' {resource!r} names no app of this tenant", 404)
        role = body.get("appRole")
        if role not in api.app_roles:
            raise ControlError(
                f"app {api.app_id} defines no app role {role!r} (its appRoles: {api.app_roles})"
            )
        held = api.user_app_roles.setdefault(str(principal["id"]), [])
        if role not in held:
            held.append(str(role))
        return {
            "principalId": principal["id"],
            "principalDisplayName": principal.get("displayName"),
            "principalType": "User",
            "resourceId": api.service_principal_id(tenant.tenant_id),
            "resourceDisplayName": api.display_name,
            "appRoleId": str(uuid.uuid5(uuid.UUID(api.object_id), str(role))),
        }

    # -- consents ------------------------------------------------------------------------------------------------
    def consents(self, tenant_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        tenant = self.tenant(tenant_id)
        client, user = self._consent_filter(tenant, query)
        return [c.public() for c in self.world.entra.consents(tenant.tenant_id, client, user)]

    def revoke_consents(self, tenant_id: str, query: dict[str, str]) -> int:
        """Withdraw the consents of a client and/or a user (both optional: all of the tenant's when neither)."""
        tenant = self.tenant(tenant_id)
        client, user = self._consent_filter(tenant, query)
        return self.world.entra.revoke_consents(tenant.tenant_id, client, user)

    @staticmethod
    def _consent_filter(tenant: Tenant, query: dict[str, str]) -> tuple[str | None, str | None]:
        no_unknown_keys(query, {"clientId", "user"}, "query: ")
        client = guid(query["clientId"], "'clientId'") if "clientId" in query else None
        user = None
        if "user" in query:
            try:
                user = str(tenant.directory.users.visible(query["user"])["id"])
            except GraphError:
                raise ControlError(f"user '{query['user']}' does not exist in the tenant", 404) from None
        return client, user

    # -- policies ------------------------------------------------------------------------------------------------
    def temporary_access_pass_policy(self, tenant_id: str, body: Any | None = None) -> dict[str, Any]:
        """The tenant's Temporary Access Pass policy, updated by ``body`` when given (the properties of
        temporaryAccessPassAuthenticationMethodConfiguration)."""
        passes = self.tenant(tenant_id).directory.temporary_access_passes
        if body is None:
            return passes.policy
        try:
            return passes.update_policy(as_object(body, "a JSON object"))
        except GraphError as exc:
            raise ControlError(exc.message) from None

    # -- the clock ---------------------------------------------------------------------------------------------
    def clock(self) -> dict[str, Any]:
        return {
            "offsetSeconds": self.world.clock.offset,
            "now": iso(self.world.clock()),
        }

    def set_clock(self, body: Any) -> dict[str, Any]:
        body = as_object(body, '{"offsetSeconds": <number>} or {"advanceSeconds": <number>}')
        if set(body) not in ({"offsetSeconds"}, {"advanceSeconds"}):
            raise ControlError('the body must be {"offsetSeconds": <number>} or {"advanceSeconds": <number>}')
        key, value = next(iter(body.items()))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ControlError(f"'{key}' must be a number of seconds")
        offset = float(value) if key == "offsetSeconds" else self.world.clock.offset + float(value)
        if key == "advanceSeconds" and value < 0:
            raise ControlError("'advanceSeconds' moves the clock forward: it must not be negative")
        if abs(offset) > MAX_CLOCK_OFFSET:
            raise ControlError("the clock's offset must stay within ten years either way")
        self.world.clock.offset = offset
        return self.clock()

    # -- tokens and keys ---------------------------------------------------------------------------------------
    def issue_token(self, body: Any) -> str:
        """A token of exactly the claims given, signed with the current key (a test backdoor, like moto's)."""
        body = as_object(body, '{"tenantId": <guid>, "claims": {...}}')
        no_unknown_keys(body, {"tenantId", "claims"})
        tid = guid(body.get("tenantId"), "'tenantId'")
        claims = body.get("claims")
        if not isinstance(claims, dict):
            raise ControlError(
                "'claims' must be a JSON object (the token's payload, exactly as it will be signed)"
            )
        self.tenant(tid)
        return self.world.entra.keys.sign(claims)


def add_secret_digest(app: AppRegistration, password: Any) -> None:
    if all(p.digest != password.digest for p in app.passwords):
        app.passwords.append(password)
