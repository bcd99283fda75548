"""Every HTTP operation of Warden's API, declared once.

The host registers each operation as an HTTP function from this table (``functions.routes``: its name, route and
method), the door that serves it is the function named after it in ``functions/<tag>.py``, requests are validated
with the models named here, and the OpenAPI document (``shared.api.openapi``) is generated from the same table. A
route that is not declared cannot be served, and a declared one cannot go undocumented.

Models are named, not imported: the host indexes the app's functions at every cold start from this table alone,
and pydantic, the schemas and everything a request needs load with the first request (``Operation.body_model``
and its siblings resolve a name in ``shared.api.schemas``). ``test_doors`` checks that each name resolves to a
model and that each door declares the models its operation validates; ``test_cold_start`` that indexing the app
loads none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.api.patterns import DOMAIN_PATTERN

if TYPE_CHECKING:
    from pydantic import BaseModel

    from shared.service.access import Role


def model(name: str | None) -> type[BaseModel] | None:
    """The model of ``shared.api.schemas`` called ``name`` (None for None), imported on first use."""
    if name is None:
        return None
    from pydantic import BaseModel

    from shared.api import schemas

    found = getattr(schemas, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise LookupError(f"shared.api.schemas has no model {name!r}")
    return found


@dataclass(frozen=True)
class Operation:
    name: str
    """The function's name, the operation's ``operationId`` and its door's name in ``functions/<tag>.py``."""
    method: str
    route: str
    """Below ``/api``, as an Azure Functions route template (``users/{id}``)."""
    summary: str
    role: Role | None
    """``None``: anonymous."""
    ok: int = 200
    response: str | None = None
    """The response body's model (a name in ``shared.api.schemas``), as are ``body``, ``query``, ``signed_body``."""
    body: str | None = None
    query: str | None = None
    errors: tuple[int, ...] = ()
    etag: bool = False
    """Responses carry ``ETag``; PATCH and DELETE honour ``If-Match`` (412 on mismatch)."""
    tag: str = "admin"
    """The OpenAPI tag; with ``-`` as ``_``, the module of ``functions/`` that holds the door (``module``)."""
    body_required: bool = True
    """False: the body may be left out (then its model's defaults apply)."""
    signed_body: str | None = None
    """A body the door validates itself, after checking its Standard Webhooks signature over the raw bytes
    (documented as the request body, with the ``webhook-*`` headers)."""
    html: bool = False
    """A browser's page too: the answer is HTML unless the client asks for JSON (``Accept``)."""
    signature: str = "standard"
    """How a signed body is signed: ``standard`` (Standard Webhooks) or ``source`` (the HR source's own way:
    Standard Webhooks for a standard source, ``X-BambooHR-Signature`` for a BambooHR one)."""

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.route)

    @property
    def module(self) -> str:
        """The module of ``functions/`` that holds the door: the tag, as a module name."""
        return self.tag.replace("-", "_")

    @property
    def response_model(self) -> type[BaseModel] | None:
        return model(self.response)

    @property
    def body_model(self) -> type[BaseModel] | None:
        return model(self.body)

    @property
    def query_model(self) -> type[BaseModel] | None:
        return model(self.query)

    @property
    def signed_body_model(self) -> type[BaseModel] | None:
        return model(self.signed_body)


PATH_PATTERNS: dict[str, tuple[str, str]] = {
    "domain": (DOMAIN_PATTERN, "a domain of the directory's tenant"),
}
"""Path parameters that are not Warden ids (GUIDs): their pattern and what they name."""


def _op(name: str, method: str, route: str, summary: str, role: Role | None, **kw: object) -> Operation:
    return Operation(name, method, route, summary, role, **kw)  # type: ignore[arg-type]


NOT_FOUND = (404,)
WRITE = (400, 404, 409)

OPERATIONS: tuple[Operation, ...] = (
    # ------------------------------------------------------------------------------------ directories
    _op(
        "connect_directory",
        "POST",
        "directories",
        "Connect an M365 tenant: app-only (client secret or certificate) or delegated (answers the authorizeUrl "
        "where an administrator of the tenant consents)",
        "admin",
        ok=201,
        response="DirectoryOut",
        body="DirectoryCreate",
        errors=(400, 409, 422, 502),
        tag="directories",
    ),
    _op(
        "list_directories",
        "GET",
        "directories",
        "Connected directories",
        "reader",
        response="DirectoryList",
        tag="directories",
    ),
    _op(
        "get_directory",
        "GET",
        "directories/{directoryId}",
        "One directory: status, domains, counts",
        "reader",
        response="DirectoryOut",
        errors=NOT_FOUND,
        etag=True,
        tag="directories",
    ),
    _op(
        "update_directory",
        "PATCH",
        "directories/{directoryId}",
        "Rename a directory or change its options",
        "admin",
        response="DirectoryOut",
        body="DirectoryPatch",
        errors=(400, 404, 412, 422, 502),
        etag=True,
        tag="directories",
    ),
    _op(
        "reactivate_directory",
        "POST",
        "directories/{directoryId}/reactivate",
        "Reactivate: app-only, the credentials checked again (a new client secret or certificate replaces the old "
        "once Entra accepts it) and the tenant read again; delegated, a new consent (authorizeUrl). Deferred syncs "
        "replay and a reconcile runs once the directory works; nobody is unbound",
        "admin",
        response="DirectoryOut",
        body="Reactivate",
        errors=(400, 404, 409, 422, 502),
        etag=True,
        tag="directories",
    ),
    _op(
        "deactivate_directory",
        "DELETE",
        "directories/{directoryId}",
        "Deactivate: remove bindings, links and secrets; M365 accounts stay as they are (irreversible)",
        "admin",
        ok=204,
        query="DeactivateQuery",
        errors=(400, 404, 422),
        tag="directories",
    ),
    _op(
        "reconcile_directory",
        "POST",
        "directories/{directoryId}/reconcile",
        "Reconcile the whole directory now (or only plan it: dryRun)",
        "admin",
        ok=202,
        response="RunStarted",
        body="ReconcileIn",
        errors=(400, 404),
        tag="runs",
    ),
    _op(
        "get_run",
        "GET",
        "directories/{directoryId}/runs/{runId}",
        "A run: status, counts per action, progress, guard, usage, and its plan (paged, by action)",
        "reader",
        response="RunOut",
        query="RunQuery",
        errors=(400, 404, 422),
        tag="runs",
    ),
    _op(
        "approve_run",
        "POST",
        "directories/{directoryId}/runs/{runId}/approve",
        "Apply a held plan (each item re-checked against the current state)",
        "admin",
        response="RunOut",
        errors=(404, 409),
        tag="runs",
    ),
    _op(
        "discard_run",
        "POST",
        "directories/{directoryId}/runs/{runId}/discard",
        "Discard a held plan",
        "admin",
        response="RunOut",
        errors=(404, 409),
        tag="runs",
    ),
    _op(
        "list_m365_users",
        "GET",
        "directories/{directoryId}/m365-users",
        "Import candidates: the tenant's accounts not yet linked, paged, filtered by text, domain, enabled",
        "reader",
        response="CandidateList",
        query="CandidateQuery",
        errors=(400, 404, 422, 502),
        tag="imports",
    ),
    _op(
        "start_import",
        "POST",
        "directories/{directoryId}/imports",
        "Import existing accounts as staged users (m365UserIds, or all), optionally binding them",
        "admin",
        ok=202,
        response="ImportStarted",
        body="ImportIn",
        errors=(400, 404),
        tag="imports",
    ),
    _op(
        "get_import",
        "GET",
        "imports/{jobId}",
        "An import's progress: total, done, skipped with reasons, failed, rate, ETA, undo deadline",
        "reader",
        response="ImportOut",
        query="ImportQuery",
        errors=(400, 404, 422),
        tag="imports",
    ),
    _op(
        "undo_import",
        "POST",
        "imports/{jobId}/undo",
        "Within 48 h: remove the imported users nobody bound, edited or added to a group since",
        "admin",
        response="UndoOut",
        errors=(404, 409),
        tag="imports",
    ),
    # ----------------------------------------------------------- federation and protected accounts
    _op(
        "get_federation",
        "GET",
        "directories/{directoryId}/domains/{domain}/federation",
        "A domain's authentication type and federation (issuer, URIs, certificates), and the checks re-run",
        "reader",
        response="FederationOut",
        errors=(404, 502),
        tag="federation",
    ),
    _op(
        "put_federation",
        "PUT",
        "directories/{directoryId}/domains/{domain}/federation",
        "Federate a domain with a SAML IdP from its metadata (rule 15): dryRun=true runs the checks and writes "
        "nothing; otherwise confirm=<domain> is required and nothing is written unless every check passes (409)",
        "admin",
        response="FederationOut",
        body="FederationIn",
        query="FederationPutQuery",
        errors=(400, 404, 409, 422, 502),
        tag="federation",
    ),
    _op(
        "delete_federation",
        "DELETE",
        "directories/{directoryId}/domains/{domain}/federation",
        "Return a federated domain to Managed (confirm=<domain>); lists the linked users who now need a password",
        "admin",
        response="FederationRemovedOut",
        query="FederationDeleteQuery",
        errors=(400, 404, 422, 502),
        tag="federation",
    ),
    _op(
        "list_protected_accounts",
        "GET",
        "directories/{directoryId}/protected-accounts",
        "Accounts Warden never touches (rule 23), with why: their directory roles, or an admin's mark",
        "reader",
        response="ProtectedList",
        query="ListQuery",
        errors=(400, 404, 422),
        tag="protected-accounts",
    ),
    _op(
        "protect_account",
        "PUT",
        "directories/{directoryId}/protected-accounts/{m365UserId}",
        "Mark an account of the tenant protected: Warden never writes to it",
        "admin",
        response="ProtectedAccountOut",
        errors=(404, 502),
        tag="protected-accounts",
    ),
    _op(
        "unprotect_account",
        "DELETE",
        "directories/{directoryId}/protected-accounts/{m365UserId}",
        "Remove an admin's mark (an account holding a directory role stays protected)",
        "admin",
        ok=204,
        errors=NOT_FOUND,
        tag="protected-accounts",
    ),
    # ------------------------------------------------------------------------------------------ users
    _op(
        "create_user",
        "POST",
        "users",
        "Create a user",
        "admin",
        ok=201,
        response="UserOut",
        body="UserCreate",
        errors=(400, 409, 422),
        etag=True,
        tag="users",
    ),
    _op(
        "list_users",
        "GET",
        "users",
        "Users, filtered and cursor-paged",
        "reader",
        response="UserList",
        query="UserListQuery",
        errors=(400, 404, 422),
        tag="users",
    ),
    _op(
        "get_user",
        "GET",
        "users/{id}",
        "One user with its bindings and per-directory link status",
        "reader",
        response="UserOut",
        errors=NOT_FOUND,
        etag=True,
        tag="users",
    ),
    _op(
        "update_user",
        "PATCH",
        "users/{id}",
        "Change a user's fields (only those given)",
        "admin",
        response="UserOut",
        body="UserPatch",
        errors=(400, 404, 409, 412, 422),
        etag=True,
        tag="users",
    ),
    _op(
        "delete_user",
        "DELETE",
        "users/{id}",
        "Delete a user (its M365 accounts get blocked, never deleted)",
        "admin",
        ok=204,
        errors=(404, 412),
        etag=True,
        tag="users",
    ),
    _op(
        "bind_user",
        "PUT",
        "users/{id}/directories/{directoryId}",
        "Bind a user to a directory directly",
        "admin",
        response="UserOut",
        errors=NOT_FOUND,
        tag="users",
    ),
    _op(
        "unbind_user",
        "DELETE",
        "users/{id}/directories/{directoryId}",
        "Remove a user's direct binding",
        "admin",
        ok=204,
        errors=NOT_FOUND,
        tag="users",
    ),
    _op(
        "push_password",
        "POST",
        "users/{id}/password",
        "Set the user's password in every directory it is linked in, now (rule 6)",
        "admin",
        response="PasswordOut",
        body="PasswordIn",
        errors=(400, 404, 409, 422),
        tag="users",
    ),
    # ----------------------------------------------------------------------------------------- groups
    _op(
        "create_group",
        "POST",
        "groups",
        "Create a group",
        "admin",
        ok=201,
        response="GroupOut",
        body="GroupCreate",
        errors=(400, 409),
        etag=True,
        tag="groups",
    ),
    _op(
        "list_groups",
        "GET",
        "groups",
        "Groups, cursor-paged",
        "reader",
        response="GroupList",
        query="ListQuery",
        errors=(400, 422),
        tag="groups",
    ),
    _op(
        "get_group",
        "GET",
        "groups/{id}",
        "One group with its directory bindings",
        "reader",
        response="GroupOut",
        errors=NOT_FOUND,
        etag=True,
        tag="groups",
    ),
    _op(
        "update_group",
        "PATCH",
        "groups/{id}",
        "Rename a group or change its description",
        "admin",
        response="GroupOut",
        body="GroupPatch",
        errors=(400, 404, 409, 412),
        etag=True,
        tag="groups",
    ),
    _op(
        "delete_group",
        "DELETE",
        "groups/{id}",
        "Delete a group, its memberships and bindings",
        "admin",
        ok=204,
        errors=(404, 412),
        etag=True,
        tag="groups",
    ),
    _op(
        "add_group_member",
        "PUT",
        "groups/{id}/members/{userId}",
        "Add a user to a group",
        "admin",
        response="GroupMemberOut",
        errors=NOT_FOUND,
        tag="groups",
    ),
    _op(
        "remove_group_member",
        "DELETE",
        "groups/{id}/members/{userId}",
        "Remove a user from a group",
        "admin",
        ok=204,
        errors=NOT_FOUND,
        tag="groups",
    ),
    _op(
        "bind_group",
        "PUT",
        "groups/{id}/directories/{directoryId}",
        "Bind a group (its members) to a directory",
        "admin",
        response="GroupOut",
        body="GroupBindIn",
        body_required=False,
        errors=NOT_FOUND,
        tag="groups",
    ),
    _op(
        "unbind_group",
        "DELETE",
        "groups/{id}/directories/{directoryId}",
        "Unbind a group from a directory",
        "admin",
        ok=204,
        errors=NOT_FOUND,
        tag="groups",
    ),
    # ------------------------------------------------------------------------------------------- hris
    _op(
        "hris_event",
        "POST",
        "hris/events",
        "Accept an HR event (joiner, mover, leaver, rehire), signed per Standard Webhooks; 202 once stored",
        None,
        ok=202,
        response="HrisAccepted",
        signed_body="HrisEvent",
        errors=(400, 401, 409, 413, 415, 422),
        tag="hris",
    ),
    _op(
        "rotate_hris_secret",
        "POST",
        "hris/secret",
        "Rotate the HRIS webhook signing secret: the new one is returned once, the previous one stays valid 24 h",
        "admin",
        ok=201,
        response="HrisSecret",
        tag="hris",
    ),
    # ------------------------------------------------------------------------------------ connections
    _op(
        "oauth_callback",
        "GET",
        "oauth/callback",
        "Where Entra ID sends the administrator back after consent: completes a delegated connection (its state "
        "single use, 15 minutes) and answers a small page (JSON with Accept: application/json)",
        None,
        response="ConsentOut",
        query="OAuthCallbackQuery",
        errors=(422, 502),
        tag="directories",
        html=True,
    ),
    _op(
        "rotate_notifications_secret",
        "POST",
        "notifications/secret",
        "Rotate the signing secret of outgoing notifications: the new one is returned once, the previous one "
        "keeps signing for 24 h",
        "admin",
        ok=201,
        response="NotificationsSecret",
        tag="directories",
    ),
    _op(
        "list_token_refresh_rounds",
        "GET",
        "token-refresh/rounds",
        "The token refresh timer's latest rounds: directories checked, refreshed, expiring, lapsed, failed",
        "reader",
        response="RoundList",
        query="RoundsQuery",
        tag="directories",
    ),
    # ---------------------------------------------------------------------------------- hr sources
    _op(
        "create_hr_source",
        "POST",
        "hris/sources",
        "Add an HR source (scim, bamboohr or standard): its credential (a SCIM token or a signing secret) is "
        "returned once",
        "admin",
        ok=201,
        response="HrSourceCreated",
        body="HrSourceCreate",
        errors=(400, 409, 422),
        etag=True,
        tag="hris",
    ),
    _op(
        "list_hr_sources",
        "GET",
        "hris/sources",
        "HR sources, the built-in webhook included, with their activity and warnings",
        "reader",
        response="HrSourceList",
        query="ListQuery",
        errors=(400, 422),
        tag="hris",
    ),
    _op(
        "get_hr_source",
        "GET",
        "hris/sources/{sourceId}",
        "One HR source: kind, mapping, credential dates, last event, last refusal, quiet warning",
        "reader",
        response="HrSourceOut",
        errors=NOT_FOUND,
        etag=True,
        tag="hris",
    ),
    _op(
        "update_hr_source",
        "PATCH",
        "hris/sources/{sourceId}",
        "Change an HR source's mapping (validated), enable or disable it, or its quiet warning",
        "admin",
        response="HrSourceOut",
        body="HrSourcePatch",
        errors=(400, 404, 412, 422),
        etag=True,
        tag="hris",
    ),
    _op(
        "delete_hr_source",
        "DELETE",
        "hris/sources/{sourceId}",
        "Delete an HR source and its credential (its users and groups stay Warden's)",
        "admin",
        ok=204,
        errors=(404, 409, 412),
        etag=True,
        tag="hris",
    ),
    _op(
        "rotate_hr_source",
        "POST",
        "hris/sources/{sourceId}/rotate",
        "A new credential for a scim or standard source, returned once; the previous one stays valid 24 h",
        "admin",
        ok=201,
        response="HrSourceRotated",
        errors=(404, 422),
        tag="hris",
    ),
    _op(
        "set_hr_source_secret",
        "PUT",
        "hris/sources/{sourceId}/secret",
        "Store the private key BambooHR generated for a bamboohr source's webhook (the previous one stays valid 24 h)",
        "admin",
        response="HrSourceOut",
        body="HrSourceSecretIn",
        errors=(400, 404, 422),
        tag="hris",
    ),
    _op(
        "hr_source_events",
        "POST",
        "hris/sources/{sourceId}/events",
        "A source's HR webhook: a standard source's event (Standard Webhooks) or a BambooHR source's delivery "
        "(X-BambooHR-Signature); 202 once stored",
        None,
        ok=202,
        response="SourceEventsAccepted",
        signed_body="SourceEventBody",
        signature="source",
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
        tag="hris",
    ),
    # ------------------------------------------------------------------------------------------ audit
    _op(
        "list_audit",
        "GET",
        "audit",
        "The audit trail, newest first, by user, directory and time",
        "reader",
        response="AuditList",
        query="AuditQueryIn",
        errors=(400, 422),
        tag="audit",
    ),
)

BY_NAME = {op.name: op for op in OPERATIONS}
