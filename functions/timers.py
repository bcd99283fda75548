"""Timers: drift enforcement (every 10 minutes by default) and lifecycle dates (every 5 minutes)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.logs import correlated, log_event
from shared.service.context import Actor

bp = func.Blueprint()
log = logging.getLogger("warden.timers")


@bp.function_name("drift_enforcement")
@bp.timer_trigger(arg_name="timer", schedule="%WARDEN_DRIFT_SCHEDULE%")
async def drift_enforcement(timer: func.TimerRequest) -> None:
    """What changed in each directory since the last round, and a sync of every managed user among it; and each
    directory's password policy (rule 16) put back where it was changed in M365."""
    from shared.bootstrap import get_container

    with correlated() as correlation_id:
        app, actor = get_container(), Actor("timer:drift", correlation_id)
        try:
            rounds = await app.drift.round(actor)
        finally:  # rule 16 is kept whatever became of the users' round
            kept = await app.tenant_settings.keep_password_policy(actor)
            log_event(log, "drift.password_policy", domainsRestored=kept)
        for r in rounds:
            log_event(
                log,
                "drift.round",
                directoryId=r.directory_id,
                changed=r.changed,
                corrections=r.corrections,
                resynced=r.resynced,
            )


@bp.function_name("lifecycle_dates")
@bp.timer_trigger(arg_name="timer", schedule="%WARDEN_DATES_SCHEDULE%")
async def lifecycle_dates(timer: func.TimerRequest) -> None:
    """Start dates that have come activate staged users; end dates suspend (and so block) users."""
    from shared.bootstrap import get_container

    with correlated() as correlation_id:
        done = await get_container().dates.apply_due(Actor("timer:dates", correlation_id))
        log_event(log, "dates.round", activated=done.activated, suspended=done.suspended)
