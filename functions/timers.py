"""Timers: drift enforcement (every 10 minutes by default) and lifecycle dates (every 5 minutes).

Import-light: a timer is registered at every cold start, so this module imports the standard library,
``azure.functions`` and ``shared.logs`` only; each function imports what it runs when it first runs.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.logs import correlated, log_event

bp = func.Blueprint()
log = logging.getLogger("warden.timers")


@bp.function_name("drift_enforcement")
@bp.timer_trigger(arg_name="timer", schedule="%WARDEN_DRIFT_SCHEDULE%")
async def drift_enforcement(timer: func.TimerRequest) -> None:
    """What changed in each directory since the last round, and a sync of every managed user among it."""
    from shared.bootstrap import get_container
    from shared.service.context import Actor

    with correlated() as correlation_id:
        rounds = await get_container().drift.round(Actor("timer:drift", correlation_id))
        for r in rounds:
            log_event(
                log,
                "drift.round",
                directoryId=r.directory_id,
                changed=r.changed,
                corrections=r.corrections,
                echoes=r.echoes,
                resynced=r.resynced,
            )


@bp.function_name("lifecycle_dates")
@bp.timer_trigger(arg_name="timer", schedule="%WARDEN_DATES_SCHEDULE%")
async def lifecycle_dates(timer: func.TimerRequest) -> None:
    """Start dates that have come activate staged users; end dates suspend (and so block) users."""
    from shared.bootstrap import get_container
    from shared.service.context import Actor

    with correlated() as correlation_id:
        done = await get_container().dates.apply_due(Actor("timer:dates", correlation_id))
        log_event(log, "dates.round", activated=done.activated, suspended=done.suspended)
