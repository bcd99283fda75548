"""Import of existing M365 accounts: candidates, jobs (queue ``import``), progress and undo."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import azure.functions as func

from functions.http import Call, Result, endpoint
from functions.poison import audit_poisoned
from shared.api import schemas as s
from shared.api.operations import BY_NAME as OPS
from shared.api.views import candidate_out, import_out
from shared.logs import correlated, log_event
from shared.service.paging import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from shared.bootstrap import Container

bp = func.Blueprint()
log = logging.getLogger("warden.imports")


@endpoint(bp, OPS["list_m365_users"])
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


@endpoint(bp, OPS["start_import"])
async def start_import(app: Container, call: Call[s.ImportIn, None]) -> Result:
    body: s.ImportIn = call.body
    selection = {"all": True, **(body.filter or {})} if body.all else {"m365UserIds": body.m365UserIds}
    job = await app.imports.start(call.params["directoryId"], selection, body.bind, call.actor)
    return Result(
        202, s.ImportStarted(jobId=job.id, status="planning"), headers={"Location": f"/api/imports/{job.id}"}
    )


@endpoint(bp, OPS["get_import"])
async def get_import(app: Container, call: Call[None, s.ImportQuery]) -> Result:
    q: s.ImportQuery = call.query
    job = await app.imports.get(call.params["jobId"])
    items = await app.imports.items(job.id, q.state, q.cursor, q.limit)
    return Result(200, import_out(job, items, app.clock()))


@endpoint(bp, OPS["undo_import"])
async def undo_import(app: Container, call: Call[None, None]) -> Result:
    report = await app.imports.undo(call.params["jobId"], call.actor)
    kept = [s.UndoKept(userId=u, reason=r) for u, r in report.kept]
    return Result(200, s.UndoOut(removed=report.removed, kept=kept))


@bp.function_name("import_job")
@bp.queue_trigger(arg_name="msg", queue_name="import", connection="AzureWebJobsStorage")
async def import_job(msg: func.QueueMessage) -> None:
    from shared.bootstrap import get_container

    body = json.loads(msg.get_body())
    job_id = str(body["jobId"])
    with correlated(job_id) as correlation_id:
        imports = get_container().imports
        try:
            job = await (
                imports.plan(job_id)
                if body["type"] == "plan"
                else imports.run_chunk(job_id, int(body["chunk"]))
            )
        except Exception as exc:
            what = {"jobId": job_id, "type": body["type"], "chunk": body.get("chunk")}
            await audit_poisoned(msg, "import", exc, correlation_id, what=what)
            raise
        log_event(
            log, f"import.{body['type']}", jobId=job_id, status=job.status, done=job.done, total=job.total
        )
