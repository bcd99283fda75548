"""Timers: drift enforcement (every 10 minutes by default), lifecycle dates (every 5 minutes)
and token refresh (hourly).

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
    """What changed in each directory since the last round, and a sync of every managed user among it; and each
    directory's password policy (rule 16) put back where it was changed in M365."""
    from shared.bootstrap import get_container
    from shared.service.context import Actor

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


@bp.function_name("token_refresh")
@bp.timer_trigger(arg_name="timer", schedule="%WARDEN_TOKEN_REFRESH_SCHEDULE%")
async def token_refresh(timer: func.TimerRequest) -> None:
    """Every connected directory's connection: a token (delegated refresh tokens redeemed before their 90-day
    window closes), the credential's expiry from Graph, the on-premises sync flag (rule 17). Then the console's
    sessions past their expiry that nobody came back to are removed, with the sign-in flows they left in Key
    Vault."""
    from shared.adapters.tables.sessions import sweep
    from shared.bootstrap import get_container
    from shared.service.context import Actor

    with correlated() as correlation_id:
        app = get_container()
        try:
            done = await app.token_refresh.round(Actor("timer:token_refresh", correlation_id))
        finally:  # the sweep keeps its hour whatever became of the round, and never decides the round's fate
            try:
                swept = await sweep(app.stores.sessions, app.secret_store, app.real_clock())
            except Exception as exc:  # the next hour sweeps again; the round's own outcome stands
                log_event(log, "console.sweep_failed", level=logging.WARNING, error=type(exc).__name__)
            else:
                log_event(log, "console.sessions_swept", removed=swept)
        for r in done.results:
            if r.outcome == "failed":
                log_event(
                    log,
                    "token_refresh.failed",
                    level=logging.WARNING,
                    directoryId=r.directory_id,
                    detail=r.detail,
                )
        log_event(log, "token_refresh.round", runId=done.run.id, **done.run.counts)
