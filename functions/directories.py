"""Connected directories (M365 tenants): connect, read, change, reactivate, deactivate; their runs; the federation of
their domains (rule 15) and their protected accounts (rule 23)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions.http import Call, Result, endpoint
from shared.api import schemas as s
from shared.api.operations import BY_NAME as OPS
from shared.api.views import (
    connect_command,
    directory_changes,
    directory_out,
    federation_out,
    federation_removed_out,
    federation_request,
    protected_list_out,
    protected_out,
    run_out,
)

if TYPE_CHECKING:
    from shared.bootstrap import Container

bp = func.Blueprint()


@endpoint(bp, OPS["connect_directory"])
async def connect_directory(app: Container, call: Call[s.DirectoryCreate, None]) -> Result:
    view = await app.directories.connect(connect_command(call.body), call.actor)
    return Result(201, directory_out(view), view.etag, {"Location": f"/api/directories/{view.directory.id}"})


@endpoint(bp, OPS["list_directories"])
async def list_directories(app: Container, call: Call[None, None]) -> Result:
    views = await app.directories.all()
    return Result(200, s.DirectoryList(items=[directory_out(v) for v in views], next=None))


@endpoint(bp, OPS["get_directory"])
async def get_directory(app: Container, call: Call[None, None]) -> Result:
    view = await app.directories.get(call.params["directoryId"])
    return Result(200, directory_out(view), view.etag)


@endpoint(bp, OPS["update_directory"])
async def update_directory(app: Container, call: Call[s.DirectoryPatch, None]) -> Result:
    view = await app.directories.update(
        call.params["directoryId"], directory_changes(call.body), call.if_match, call.actor
    )
    return Result(200, directory_out(view), view.etag)


@endpoint(bp, OPS["reactivate_directory"])
async def reactivate_directory(app: Container, call: Call[s.Reactivate, None]) -> Result:
    body: s.Reactivate = call.body
    secret = body.clientSecret.get_secret_value() if body.clientSecret is not None else None
    view = await app.directories.reactivate(
        call.params["directoryId"], secret, body.credentialExpiresAt, call.actor
    )
    return Result(200, directory_out(view), view.etag)


@endpoint(bp, OPS["deactivate_directory"])
async def deactivate_directory(app: Container, call: Call[None, s.DeactivateQuery]) -> Result:
    await app.directories.deactivate(call.params["directoryId"], call.query.confirm, call.actor)
    return Result(204)


@endpoint(bp, OPS["reconcile_directory"])
async def reconcile_directory(app: Container, call: Call[s.ReconcileIn, None]) -> Result:
    directory_id = call.params["directoryId"]
    run = await app.reconciler.start(directory_id, call.body.dryRun, call.actor)
    location = f"/api/directories/{directory_id}/runs/{run.id}"
    return Result(202, s.RunStarted(runId=run.id, status="planning"), headers={"Location": location})


@endpoint(bp, OPS["get_run"])
async def get_run(app: Container, call: Call[None, s.RunQuery]) -> Result:
    q: s.RunQuery = call.query
    directory_id, run_id = call.params["directoryId"], call.params["runId"]
    run, _ = await app.reconciler.get(directory_id, run_id)
    items = await app.reconciler.items(directory_id, run_id, q.action, q.cursor, q.limit)
    return Result(200, run_out(run, items))


@endpoint(bp, OPS["approve_run"])
async def approve_run(app: Container, call: Call[None, None]) -> Result:
    directory_id, run_id = call.params["directoryId"], call.params["runId"]
    run = await app.reconciler.approve(directory_id, run_id, call.actor)
    return Result(200, run_out(run, await app.reconciler.items(directory_id, run_id, None, None, 50)))


@endpoint(bp, OPS["discard_run"])
async def discard_run(app: Container, call: Call[None, None]) -> Result:
    directory_id, run_id = call.params["directoryId"], call.params["runId"]
    run = await app.reconciler.discard(directory_id, run_id, call.actor)
    return Result(200, run_out(run, await app.reconciler.items(directory_id, run_id, None, None, 50)))


# --------------------------------------------------------------------------- federation (rule 15)
@endpoint(bp, OPS["get_federation"])
async def get_federation(app: Container, call: Call[None, None]) -> Result:
    directory_id = call.params["directoryId"]
    view = await app.federations.show(directory_id, call.params["domain"])
    return Result(200, federation_out(directory_id, view))


@endpoint(bp, OPS["put_federation"])
async def put_federation(app: Container, call: Call[s.FederationIn, s.FederationPutQuery]) -> Result:
    directory_id = call.params["directoryId"]
    request = federation_request(call.body, call.query)
    view = await app.federations.put(directory_id, call.params["domain"], request, call.actor)
    return Result(200, federation_out(directory_id, view))


@endpoint(bp, OPS["delete_federation"])
async def delete_federation(app: Container, call: Call[None, s.FederationDeleteQuery]) -> Result:
    directory_id = call.params["directoryId"]
    removed = await app.federations.remove(
        directory_id, call.params["domain"], call.query.confirm, call.actor
    )
    return Result(200, federation_removed_out(directory_id, removed))


# --------------------------------------------------------------------- protected accounts (rule 23)
@endpoint(bp, OPS["list_protected_accounts"])
async def list_protected_accounts(app: Container, call: Call[None, s.ListQuery]) -> Result:
    page = await app.protections.page(call.params["directoryId"], call.query.cursor, call.query.limit)
    return Result(200, protected_list_out(page))


@endpoint(bp, OPS["protect_account"])
async def protect_account(app: Container, call: Call[None, None]) -> Result:
    row, created = await app.protections.mark(
        call.params["directoryId"], call.params["m365UserId"], call.actor
    )
    return Result(201 if created else 200, protected_out(row))


@endpoint(bp, OPS["unprotect_account"])
async def unprotect_account(app: Container, call: Call[None, None]) -> Result:
    await app.protections.unmark(call.params["directoryId"], call.params["m365UserId"], call.actor)
    return Result(204)
