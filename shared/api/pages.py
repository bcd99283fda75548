"""The small pages a browser sees at the end of a delegated consent (``GET /api/oauth/callback``): what happened, in
plain words, escaped; no script, no external resource (the door sends ``Content-Security-Policy: default-src
'none'``)."""

from __future__ import annotations

from html import escape

from shared.service.connections.consent import Completed

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


def wants_html(accept: str | None) -> bool:
    """A browser's page unless the client asks for JSON (and not HTML) in ``Accept``."""
    kinds = {part.split(";")[0].strip().lower() for part in (accept or "").split(",")}
    asks_json = bool(kinds & {"application/json", "application/problem+json"})
    return "text/html" in kinds or not asks_json


def consent_done(done: Completed) -> str:
    d = done.directory
    who = d.consented_by.user_principal_name if d.consented_by else "an administrator"
    lines = [
        f"<p>Warden is connected to <strong>{escape(d.name)}</strong> (tenant {escape(d.tenant_id)}) with the "
        f"consent of <strong>{escape(who)}</strong>.</p>",
        f"<p>Status: <strong>{escape(d.status)}</strong>{': ' + escape(d.status_reason) if d.status_reason else ''}</p>",
    ]
    if done.reactivated:
        lines.append(
            f"<p>The connection works again: {done.replayed} waiting sync(s) are on their way, and a "
            "reconcile catches up on the rest.</p>"
        )
    elif done.replayed:
        lines.append(f"<p>{done.replayed} waiting sync(s) are on their way.</p>")
    lines.append(
        "<p>Warden refreshes the connection every week so that it does not lapse. It lives on this "
        "account's consent: if the account leaves or is disabled, reactivate the directory.</p>"
    )
    return _PAGE.format(title="Connected", body="".join(lines))


def consent_failed(detail: str, status: int) -> str:
    title = "Not connected" if status < 500 else "Entra ID did not answer"
    body = f"<p>{escape(detail)}</p><p>You can close this page.</p>"
    return _PAGE.format(title=title, body=body)
