"""Every HTTP operation of Warden's API, declared once.

The doors (``functions/``) register each operation's route from here and validate its body and query with the
models named here; the OpenAPI document (``shared.api.openapi``) is generated from the same table. A route
that is not declared cannot be served, and a declared one cannot go undocumented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from shared.api import schemas as s
from shared.service.access import Role


@dataclass(frozen=True)
class Operation:
    name: str
    """The function's name and the operation's ``operationId``."""
    method: str
    route: str
    """Below ``/api``, as an Azure Functions route template (``users/{id}``)."""
    summary: str
    role: Role | None
    """``None``: anonymous."""
    ok: int = 200
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    etag: bool = False
    """Responses carry ``ETag``; PATCH and DELETE honour ``If-Match`` (412 on mismatch)."""
    tag: str = "admin"
    body_required: bool = True
    """False: the body may be left out (then its model's defaults apply)."""
    signed_body: type[BaseModel] | None = None
    """A body the door validates itself, after checking its Standard Webhooks signature over the raw bytes
    (documented as the request body, with the ``webhook-*`` headers)."""
    signature: str = "standard"
    """How a signed body is signed: ``standard`` (Standard Webhooks) or ``source`` (the HR source's own way:
    Standard Webhooks for a standard source, ``X-BambooHR-Signature`` for a BambooHR one)."""

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.route)


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
        "Connect an M365 tenant (app-only credentials)",
        "admin",
        ok=201,
        response=s.DirectoryOut,
        body=s.DirectoryCreate,
        errors=(400, 409, 422, 502),
        tag="directories",
    ),
    _op(
        "list_directories",
        "GET",
        "directories",
        "Connected directories",
        "reader",
        response=s.DirectoryList,
        tag="directories",
    ),
    _op(
        "get_directory",
        "GET",
        "directories/{directoryId}",
        "One directory: status, domains, counts",
        "reader",
        response=s.DirectoryOut,
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
        response=s.DirectoryOut,
        body=s.DirectoryPatch,
        errors=(400, 404, 412),
        etag=True,
        tag="directories",
    ),
    _op(
        "reactivate_directory",
        "POST",
        "directories/{directoryId}/reactivate",
        "Re-validate the credentials (optionally a new client secret) and re-read the tenant's domains",
        "admin",
        response=s.DirectoryOut,
        body=s.Reactivate,
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
        query=s.DeactivateQuery,
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
        response=s.RunStarted,
        body=s.ReconcileIn,
        errors=(400, 404),
        tag="runs",
    ),
    _op(
        "get_run",
        "GET",
        "directories/{directoryId}/runs/{runId}",
        "A run: status, counts per action, progress, guard, usage, and its plan (paged, by action)",
        "reader",
        response=s.RunOut,
        query=s.RunQuery,
        errors=(400, 404, 422),
        tag="runs",
    ),
    _op(
        "approve_run",
        "POST",
        "directories/{directoryId}/runs/{runId}/approve",
        "Apply a held plan (each item re-checked against the current state)",
        "admin",
        response=s.RunOut,
        errors=(404, 409),
        tag="runs",
    ),
    _op(
        "discard_run",
        "POST",
        "directories/{directoryId}/runs/{runId}/discard",
        "Discard a held plan",
        "admin",
        response=s.RunOut,
        errors=(404, 409),
        tag="runs",
    ),
    _op(
        "list_m365_users",
        "GET",
        "directories/{directoryId}/m365-users",
        "Import candidates: the tenant's accounts not yet linked, paged, filtered by text, domain, enabled",
        "reader",
        response=s.CandidateList,
        query=s.CandidateQuery,
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
        response=s.ImportStarted,
        body=s.ImportIn,
        errors=(400, 404),
        tag="imports",
    ),
    _op(
        "get_import",
        "GET",
        "imports/{jobId}",
        "An import's progress: total, done, skipped with reasons, failed, rate, ETA, undo deadline",
        "reader",
        response=s.ImportOut,
        query=s.ImportQuery,
        errors=(400, 404, 422),
        tag="imports",
    ),
    _op(
        "undo_import",
        "POST",
        "imports/{jobId}/undo",
        "Within 48 h: remove the imported users nobody bound, edited or added to a group since",
        "admin",
        response=s.UndoOut,
        errors=(404, 409),
        tag="imports",
    ),
    # ------------------------------------------------------------------------------------------ users
    _op(
        "create_user",
        "POST",
        "users",
        "Create a user",
        "admin",
        ok=201,
        response=s.UserOut,
        body=s.UserCreate,
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
        response=s.UserList,
        query=s.UserListQuery,
        errors=(400, 404, 422),
        tag="users",
    ),
    _op(
        "get_user",
        "GET",
        "users/{id}",
        "One user with its bindings and per-directory link status",
        "reader",
        response=s.UserOut,
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
        response=s.UserOut,
        body=s.UserPatch,
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
        response=s.UserOut,
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
        response=s.PasswordOut,
        body=s.PasswordIn,
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
        response=s.GroupOut,
        body=s.GroupCreate,
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
        response=s.GroupList,
        query=s.ListQuery,
        errors=(400, 422),
        tag="groups",
    ),
    _op(
        "get_group",
        "GET",
        "groups/{id}",
        "One group with its directory bindings",
        "reader",
        response=s.GroupOut,
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
        response=s.GroupOut,
        body=s.GroupPatch,
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
        response=s.GroupMemberOut,
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
        response=s.GroupOut,
        body=s.GroupBindIn,
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
        response=s.HrisAccepted,
        signed_body=s.HrisEvent,
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
        response=s.HrisSecret,
        tag="hris",
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
        response=s.HrSourceCreated,
        body=s.HrSourceCreate,
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
        response=s.HrSourceList,
        query=s.ListQuery,
        errors=(400, 422),
        tag="hris",
    ),
    _op(
        "get_hr_source",
        "GET",
        "hris/sources/{sourceId}",
        "One HR source: kind, mapping, credential dates, last event, last refusal, quiet warning",
        "reader",
        response=s.HrSourceOut,
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
        response=s.HrSourceOut,
        body=s.HrSourcePatch,
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
        response=s.HrSourceRotated,
        errors=(404, 422),
        tag="hris",
    ),
    _op(
        "set_hr_source_secret",
        "PUT",
        "hris/sources/{sourceId}/secret",
        "Store the private key BambooHR generated for a bamboohr source's webhook (the previous one stays valid 24 h)",
        "admin",
        response=s.HrSourceOut,
        body=s.HrSourceSecretIn,
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
        response=s.SourceEventsAccepted,
        signed_body=s.SourceEventBody,
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
        response=s.AuditList,
        query=s.AuditQueryIn,
        errors=(400, 422),
        tag="audit",
    ),
)

BY_NAME = {op.name: op for op in OPERATIONS}
