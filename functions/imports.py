"""Doors of the operations tagged ``imports``: import candidates, starting an import, its progress and undo (the
job itself runs on the ``import`` queue: ``functions.jobs``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import candidate_out, import_out
from shared.service.paging import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def list_m365_users(app: Container, call: Call[None, s.CandidateQuery]) -> Result:
    q: s.CandidateQuery = call.query
    directory_id = call.params["directoryId"]
    scope = f"m365users:{directory_id}:{q.text}:{q.domain}:{q.enabled}:{q.limit}"
    found, next_link = await app.imports.candidates(
        directory_id,
        text=q.text,
        domain=q.domain,
        enabled=q.enabled,
        cursor=decode_cursor(scope, q.cursor),
        limit=q.limit,
    )
    nxt = encode_cursor(scope, next_link) if next_link else None
    return Result(200, s.CandidateList(items=[candidate_out(c) for c in found], next=nxt))


async def start_import(app: Container, call: Call[s.ImportIn, None]) -> Result:
    body: s.ImportIn = call.body
    selection = {"all": True, **(body.filter or {})} if body.all else {"m365UserIds": body.m365UserIds}
    job = await app.imports.start(call.params["directoryId"], selection, body.bind, call.actor)
    return Result(
        202, s.ImportStarted(jobId=job.id, status="planning"), headers={"Location": f"/api/imports/{job.id}"}
    )


async def get_import(app: Container, call: Call[None, s.ImportQuery]) -> Result:
    q: s.ImportQuery = call.query
    job = await app.imports.get(call.params["jobId"])
    items = await app.imports.items(job.id, q.state, q.cursor, q.limit)
    return Result(200, import_out(job, items, app.clock()))


async def undo_import(app: Container, call: Call[None, None]) -> Result:
    report = await app.imports.undo(call.params["jobId"], call.actor)
    kept = [s.UndoKept(userId=u, reason=r) for u, r in report.kept]
    return Result(200, s.UndoOut(removed=report.removed, kept=kept))
