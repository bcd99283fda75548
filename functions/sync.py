"""The per-user sync queue: each message names one user; its sync reads, observes, plans, applies, records. And the
group mirror queue.

Import-light: a queue trigger is registered at every cold start, so this module imports the standard library,
``azure.functions`` and ``shared.logs`` only; each function imports what it runs when it first runs.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.poison import audit_poisoned
from shared.logs import correlated, log_event

bp = func.Blueprint()
log = logging.getLogger("warden.sync")
BUSY_DELAY_SECONDS = 1
ALLOWED_ACTORS = frozenset({"timer:drift", "timer:reconcile", "timer:dates"})
"""Who a queued sync may be audited as besides the system (the message is Warden's own; this keeps it honest)."""
MAX_DEQUEUE_COUNT = 5
"""host.json ``extensions.queues.maxDequeueCount``: the attempt after which a failing message is poisoned."""


@bp.function_name("sync_user")
@bp.queue_trigger(arg_name="msg", queue_name="user-sync", connection="AzureWebJobsStorage")
async def sync_user(msg: func.QueueMessage) -> None:
    from shared.bootstrap import get_container
    from shared.service.context import Actor
    from shared.service.sync.user import SyncBusy

    body = json.loads(msg.get_body())  # not JSON: raises, and after 5 attempts lands in user-sync-poison
    user_id = str(body["userId"])
    actor_name = body.get("actor") if body.get("actor") in ALLOWED_ACTORS else "system"
    gone = body.get("gone") is True
    approved = body.get("approved") is True
    with correlated(body.get("correlationId")) as correlation_id:
        container = get_container()
        try:
            report = await container.sync.sync_user(
                user_id, Actor(actor_name, correlation_id), gone=gone, approved=approved
            )
        except SyncBusy:
            # Another run of this user is under way: run after it, from a fresh message (not a failed attempt).
            await container.sync_queue.enqueue(
                [user_id],
                correlation_id,
                delay_seconds=BUSY_DELAY_SECONDS,
                actor=body.get("actor"),
                gone=gone,
                approved=approved,
            )
            log_event(log, "sync.deferred", userId=user_id)
            return
        except Exception as exc:
            last = (msg.dequeue_count or 0) >= MAX_DEQUEUE_COUNT
            log_event(
                log,
                "sync.failed",
                level=logging.ERROR if last else logging.WARNING,
                userId=user_id,
                error=type(exc).__name__,
                attempt=msg.dequeue_count,
            )
            if last:
                await container.auditor.record(
                    Actor("system", correlation_id),
                    "sync.poisoned",
                    result=f"failed: {type(exc).__name__}",
                    user_id=user_id,
                )
            raise
        log_event(
            log,
            "sync.done",
            userId=user_id,
            writes=report.writes,
            outcomes=[r.outcome for r in report.results],
        )


@bp.function_name("mirror_group")
@bp.queue_trigger(arg_name="msg", queue_name="group-sync", connection="AzureWebJobsStorage")
async def mirror_group(msg: func.QueueMessage) -> None:
    """A group's mirror into one directory (or, its Warden group deleted, the deletion of the M365 group Warden
    had created)."""
    from shared.bootstrap import get_container
    from shared.service.context import Actor
    from shared.service.sync.group import GroupBusy

    body = json.loads(msg.get_body())
    directory_id = str(body["directoryId"])
    with correlated(body.get("correlationId")) as correlation_id:
        container = get_container()
        actor = Actor("system", correlation_id)
        if "deleteM365Group" in body:
            await container.group_sync.delete_mirror(directory_id, str(body["deleteM365Group"]), actor)
            return
        group_id = str(body["groupId"])
        try:
            report = await container.group_sync.sync_group(group_id, directory_id, actor)
        except GroupBusy:
            await container.group_queue.enqueue(
                [(group_id, directory_id)], correlation_id, delay_seconds=BUSY_DELAY_SECONDS
            )
            return
        except Exception as exc:
            what = {"groupId": group_id}
            await audit_poisoned(msg, "group-sync", exc, correlation_id, directory_id=directory_id, what=what)
            raise
        plan = report.plan
        log_event(
            log,
            "group.mirrored",
            groupId=group_id,
            directoryId=directory_id,
            action=plan.action if plan else None,
            added=len(plan.add) if plan else 0,
            removed=len(plan.remove) if plan else 0,
            writes=report.writes,
            error=report.error,
        )
