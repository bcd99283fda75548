"""The chunked jobs: reconcile runs (queue ``reconcile``: planning a run, applying its chunks) and imports (queue
``import``: planning, then each chunk), and the nightly reconcile timer.

Import-light: a queue or timer trigger is registered at every cold start, so this module imports the standard
library, ``azure.functions`` and ``shared.logs`` only; each function imports what it runs when it first runs.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.poison import audit_poisoned
from shared.logs import correlated, log_event

bp = func.Blueprint()
log = logging.getLogger("warden.reconcile")
import_log = logging.getLogger("warden.imports")


@bp.function_name("reconcile_job")
@bp.queue_trigger(arg_name="msg", queue_name="reconcile", connection="AzureWebJobsStorage")
async def reconcile_job(msg: func.QueueMessage) -> None:
    from shared.bootstrap import get_container

    body = json.loads(msg.get_body())
    directory_id, run_id = str(body["directoryId"]), str(body["runId"])
    with correlated(run_id) as correlation_id:
        reconciler = get_container().reconciler
        try:
            if body["type"] == "plan":
                run = await reconciler.plan(directory_id, run_id)
            else:
                run = await reconciler.apply_chunk(directory_id, run_id, int(body["chunk"]))
        except Exception as exc:
            what = {"runId": run_id, "type": body["type"], "chunk": body.get("chunk")}
            await audit_poisoned(msg, "reconcile", exc, correlation_id, directory_id=directory_id, what=what)
            raise
        log_event(
            log,
            f"reconcile.{body['type']}",
            runId=run_id,
            status=run.status,
            counts=run.counts,
            progress=run.progress,
        )


@bp.function_name("reconcile_nightly")
@bp.timer_trigger(arg_name="timer", schedule="%WARDEN_RECONCILE_SCHEDULE%")
async def reconcile_nightly(timer: func.TimerRequest) -> None:
    """Every connected directory Warden may write to, fully reconciled (02:00 UTC by default)."""
    from shared.bootstrap import get_container
    from shared.service.context import Actor

    with correlated() as correlation_id:
        runs = await get_container().reconciler.start_all(Actor("timer:reconcile", correlation_id))
        for run in runs:
            log_event(log, "reconcile.scheduled", directoryId=run.directory_id, runId=run.id)


@bp.function_name("import_job")
@bp.queue_trigger(arg_name="msg", queue_name="import", connection="AzureWebJobsStorage")
async def import_job(msg: func.QueueMessage) -> None:
    from shared.bootstrap import get_container

    body = json.loads(msg.get_body())
    job_id = str(body["jobId"])
    with correlated(job_id):
        imports = get_container().imports
        job = await (
            imports.plan(job_id) if body["type"] == "plan" else imports.run_chunk(job_id, int(body["chunk"]))
        )
        log_event(
            import_log,
            f"import.{body['type']}",
            jobId=job_id,
            status=job.status,
            done=job.done,
            total=job.total,
        )
