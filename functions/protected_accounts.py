"""Doors of the operations tagged ``protected-accounts``: the accounts of a directory Warden never writes to
(rule 23): role holders read from Graph, and an admin's marks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import protected_list_out, protected_out

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def list_protected_accounts(app: Container, call: Call[None, s.ListQuery]) -> Result:
    page = await app.protections.page(call.params["directoryId"], call.query.cursor, call.query.limit)
    return Result(200, protected_list_out(page))


async def protect_account(app: Container, call: Call[None, None]) -> Result:
    row, created = await app.protections.mark(
        call.params["directoryId"], call.params["m365UserId"], call.actor
    )
    return Result(201 if created else 200, protected_out(row))


async def unprotect_account(app: Container, call: Call[None, None]) -> Result:
    await app.protections.unmark(call.params["directoryId"], call.params["m365UserId"], call.actor)
    return Result(204)
