"""Doors of the operations tagged ``runs``: a directory's reconcile runs — start one (or a dry run), read it with its
plan, approve or discard a held plan. (The runs themselves work on the ``reconcile`` queue: ``functions.jobs``.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import run_out

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def reconcile_directory(app: Container, call: Call[s.ReconcileIn, None]) -> Result:
    directory_id = call.params["directoryId"]
    run = await app.reconciler.start(directory_id, call.body.dryRun, call.actor)
    location = f"/api/directories/{directory_id}/runs/{run.id}"
    return Result(202, s.RunStarted(runId=run.id, status="planning"), headers={"Location": location})


async def get_run(app: Container, call: Call[None, s.RunQuery]) -> Result:
    q: s.RunQuery = call.query
    directory_id, run_id = call.params["directoryId"], call.params["runId"]
    run, _ = await app.reconciler.get(directory_id, run_id)
    items = await app.reconciler.items(directory_id, run_id, q.action, q.cursor, q.limit)
    return Result(200, run_out(run, items))


async def approve_run(app: Container, call: Call[None, None]) -> Result:
    directory_id, run_id = call.params["directoryId"], call.params["runId"]
    run = await app.reconciler.approve(directory_id, run_id, call.actor)
    return Result(200, run_out(run, await app.reconciler.items(directory_id, run_id, None, None, 50)))


async def discard_run(app: Container, call: Call[None, None]) -> Result:
    directory_id, run_id = call.params["directoryId"], call.params["runId"]
    run = await app.reconciler.discard(directory_id, run_id, call.actor)
    return Result(200, run_out(run, await app.reconciler.items(directory_id, run_id, None, None, 50)))
