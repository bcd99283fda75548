"""Connected directories (M365 tenants): connect, read, change, reactivate, deactivate; the delegated consent's
callback, the notification secret and the token refresh timer's rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.pages import consent_done, consent_failed, wants_html
from shared.api.views import (
    connect_command,
    consent_out,
    directory_changes,
    directory_out,
    reactivation,
    round_out,
)
from shared.domain.errors import Invalid, Upstream
from shared.service.context import Actor

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def connect_directory(app: Container, call: Call[s.DirectoryCreate, None]) -> Result:
    view = await app.directories.connect(connect_command(call.body, app.real_clock()), call.actor)
    return Result(201, directory_out(view), view.etag, {"Location": f"/api/directories/{view.directory.id}"})


async def list_directories(app: Container, call: Call[None, None]) -> Result:
    views = await app.directories.all()
    return Result(200, s.DirectoryList(items=[directory_out(v) for v in views], next=None))


async def get_directory(app: Container, call: Call[None, None]) -> Result:
    view = await app.directories.get(call.params["directoryId"])
    return Result(200, directory_out(view), view.etag)


async def update_directory(app: Container, call: Call[s.DirectoryPatch, None]) -> Result:
    view = await app.directories.update(
        call.params["directoryId"], directory_changes(call.body), call.if_match, call.actor
    )
    return Result(200, directory_out(view), view.etag)


async def reactivate_directory(app: Container, call: Call[s.Reactivate, None]) -> Result:
    command = reactivation(call.body, app.real_clock())
    view = await app.directories.reactivate(call.params["directoryId"], command, call.actor)
    return Result(200, directory_out(view), view.etag)


async def deactivate_directory(app: Container, call: Call[None, s.DeactivateQuery]) -> Result:
    await app.directories.deactivate(call.params["directoryId"], call.query.confirm, call.actor)
    return Result(204)


async def oauth_callback(app: Container, call: Call[None, s.OAuthCallbackQuery]) -> Result:
    """Anonymous (Entra ID sends the browser here): the state is what authenticates the request."""
    page = wants_html(call.headers.get("accept"))
    answer = {k: v for k, v in call.query.model_dump().items() if v is not None}
    try:
        done = await app.consent.complete(answer, Actor("system", call.actor.correlation_id))
    except Invalid as failed:
        if not page:
            raise
        return Result(422, html=consent_failed(failed.detail, 422))
    except Upstream as failed:
        if not page:
            raise
        return Result(502, html=consent_failed(failed.detail, 502))
    if page:
        return Result(200, html=consent_done(done))
    return Result(200, consent_out(done))


async def rotate_notifications_secret(app: Container, call: Call[None, None]) -> Result:
    secret = await app.deliveries.rotate_secret(call.actor)
    return Result(201, s.NotificationsSecret(secret=secret))


async def list_token_refresh_rounds(app: Container, call: Call[None, s.RoundsQuery]) -> Result:
    rounds = await app.token_refresh.rounds(call.query.limit)
    return Result(200, s.RoundList(items=[round_out(r) for r in rounds], next=None))
