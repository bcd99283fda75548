"""Doors of the operations tagged ``federation``: a domain of a directory federated with the organisation's SAML
IdP (rule 15): shown, put (dry run, checks, confirmation), removed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import federation_out, federation_removed_out, federation_request

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def get_federation(app: Container, call: Call[None, None]) -> Result:
    directory_id = call.params["directoryId"]
    view = await app.federations.show(directory_id, call.params["domain"])
    return Result(200, federation_out(directory_id, view))


async def put_federation(app: Container, call: Call[s.FederationIn, s.FederationPutQuery]) -> Result:
    directory_id = call.params["directoryId"]
    request = federation_request(call.body, call.query)
    view = await app.federations.put(directory_id, call.params["domain"], request, call.actor)
    return Result(200, federation_out(directory_id, view))


async def delete_federation(app: Container, call: Call[None, s.FederationDeleteQuery]) -> Result:
    directory_id = call.params["directoryId"]
    removed = await app.federations.remove(
        directory_id, call.params["domain"], call.query.confirm, call.actor
    )
    return Result(200, federation_removed_out(directory_id, removed))
