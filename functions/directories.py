"""Doors of the operations tagged ``directories``: connected M365 tenants — connect, read, change, reactivate,
deactivate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import connect_command, directory_changes, directory_out

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def connect_directory(app: Container, call: Call[s.DirectoryCreate, None]) -> Result:
    view = await app.directories.connect(connect_command(call.body), call.actor)
    return Result(201, directory_out(view), view.etag, {"Location": f"/api/directories/{view.directory.id}"})


async def list_directories(app: Container, call: Call[None, None]) -> Result:
    views = await app.directories.all()
    return Result(200, s.DirectoryList(items=[directory_out(v) for v in views], next=None))


async def get_directory(app: Container, call: Call[None, None]) -> Result:
    view = await app.directories.get(call.params["directoryId"])
    return Result(200, directory_out(view), view.etag)


async def update_directory(app: Container, call: Call[s.DirectoryPatch, None]) -> Result:
    view = await app.directories.update(
        call.params["directoryId"], directory_changes(call.body), call.if_match, call.actor
    )
    return Result(200, directory_out(view), view.etag)


async def reactivate_directory(app: Container, call: Call[s.Reactivate, None]) -> Result:
    body: s.Reactivate = call.body
    secret = body.clientSecret.get_secret_value() if body.clientSecret is not None else None
    view = await app.directories.reactivate(
        call.params["directoryId"], secret, body.credentialExpiresAt, call.actor
    )
    return Result(200, directory_out(view), view.etag)


async def deactivate_directory(app: Container, call: Call[None, s.DeactivateQuery]) -> Result:
    await app.directories.deactivate(call.params["directoryId"], call.query.confirm, call.actor)
    return Result(204)
