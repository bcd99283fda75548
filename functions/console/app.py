"""The console's pages and forms, loaded with its first request.

Every page and action is an operation of the admin API run in-process: the console calls the operation's door
(``functions.routes.door``) with the signed-in person as its principal, so a page shows exactly what the API
answers and an action does exactly what the API does, audited as ``admin:<oid>``. The server decides with the
operation's own role (``Warden.Admin`` acts, ``Warden.Reader`` looks), whatever a page shows: a reader's forged
POST is refused 403 like a reader's bearer token would be.

Sign-in (``/signin`` → Entra ID → ``/auth``): a pre-sign-in session, its own cookie, holds which MSAL flow is
under way; the flow itself (PKCE verifier, nonce) is a Key Vault secret. The callback redeems the code, validates
the access token with the admin API's validator, drops the pre-sign-in session and issues a new session id
(session fixation), then forgets the token. Every form carries the session's CSRF token; a POST without it, or
with another, is 403; a POST whose ``Origin`` is not Warden's is 403 too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func
import jinja2
from pydantic import BaseModel, ValidationError

from functions.console.web import BadForm, Request, Response, parse, redirect, session_cookie
from functions.http import STATUS_OF, Call, role_needed, validation_problem
from functions.routes import door
from shared.adapters.console_signin import ConsoleApp, MsalSignIn, SignInRefused
from shared.adapters.tables.sessions import (
    PENDING_SECONDS,
    SIGNED_IN_SECONDS,
    ConsoleSession,
    flow_secret,
    new_session_id,
    session_key,
)
from shared.api.operations import OPERATIONS, Operation
from shared.bootstrap import Container, get_container
from shared.config import ConfigError
from shared.domain.errors import DomainError
from shared.logs import correlated, log_event
from shared.service.access import ADMIN_ROLE, READER_ROLE, Principal, Unauthenticated
from shared.service.connections.ports import ClientCredential
from shared.service.context import Actor

log = logging.getLogger("warden.console")
HERE = Path(__file__).parent
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
OPS = {op.name: op for op in OPERATIONS}
PAGE_SIZE = 50


class Refused(Exception):
    """An answer other than the page: ``status`` and a sentence for the person."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@cache
def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["qs"] = _qs
    return env


def _qs(params: dict[str, Any], **more: Any) -> str:
    """A query string of the filters given (empty ones left out), with ``more`` (e.g. the next page's cursor)."""
    return urlencode({k: v for k, v in {**params, **more}.items() if v not in (None, "")})


def _when(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        return str(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return str(value)


# ---------------------------------------------------------------------------------------------- one request
@dataclass
class Visit:
    """One request to the console: who makes it (``session``: signed in, or None) and what it may call."""

    app: Container
    req: Request
    session: ConsoleSession | None
    correlation_id: str

    @property
    def principal(self) -> Principal:
        s = self.session
        if s is None or not s.signed_in or s.object_id is None:
            raise Refused(401, "sign in first")
        return Principal(object_id=s.object_id, app_id=None, roles=s.roles)

    @property
    def is_admin(self) -> bool:
        return self.session is not None and ADMIN_ROLE in self.session.roles

    async def call(
        self,
        name: str,
        params: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """The operation ``name`` of the admin API, as the signed-in person: its answer's body (a model)."""
        op: Operation = OPS[name]
        principal = self.principal
        if op.role is not None and not principal.may(op.role):
            raise Refused(403, f"this needs the app role {role_needed(op.role)}")
        q = _validated(op.query_model, query, "query")
        b = _validated(op.body_model, body, "body")
        call: Call[Any, Any] = Call(
            principal=principal,
            actor=Actor(principal.actor, self.correlation_id),
            params={k: v.lower() for k, v in (params or {}).items()},
            body=b,
            query=q,
        )
        result = await door(op)(self.app, call)
        return result.body

    def page(self, template: str, code: int = 200, **values: Any) -> Response:
        html = (
            templates()
            .get_template(template)
            .render(
                session=self.session,
                is_admin=self.is_admin,
                csrf=self.session.csrf if self.session else "",
                path=self.req.path,
                **values,
            )
        )
        return Response(code, html)


def _validated(model: type[BaseModel] | None, given: dict[str, Any] | None, where: str) -> BaseModel | None:
    """``given`` as the operation's model, as the API validates it (the same errors, named the same way)."""
    if model is None:
        return None
    try:
        return model.model_validate(given or {})
    except ValidationError as exc:
        raise Refused(400, validation_problem(exc, where).detail) from None


Handler = Callable[[Visit, re.Match[str]], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    signed_in: bool = True


ROUTES: list[Route] = []


def route(method: str, pattern: str, *, signed_in: bool = True) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        regex = re.compile(pattern.replace("{id}", f"(?P<id>{_GUID})").replace("{run}", f"(?P<run>{_GUID})"))
        ROUTES.append(Route(method, regex, handler, signed_in))
        return handler

    return register


# --------------------------------------------------------------------------------------------------- serving
async def serve(req: func.HttpRequest) -> func.HttpResponse:
    with correlated(req.headers.get("x-correlation-id")) as correlation_id:
        try:
            request = parse(req)
        except BadForm as exc:
            return _error_page(400, str(exc)).to_http()
        try:
            app = get_container()
        except ConfigError as exc:
            log_event(log, "console.misconfigured", level=logging.ERROR, problems=exc.problems)
            return _error_page(503, "Warden is not configured: " + "; ".join(exc.problems)).to_http()
        response = await answer(app, request, correlation_id)
        log_event(
            log,
            "console.served",
            method=request.method,
            page=_page_name(request.path),
            status=response.status,
        )
        return response.to_http()


def _page_name(path: str) -> str:
    """The page, for the log: ids replaced (and never a query string: the sign-in's callback carries a code)."""
    return re.sub(_GUID, "{id}", path) or "overview"


async def answer(app: Container, req: Request, correlation_id: str) -> Response:
    if req.method == "GET" and req.path.startswith("static/"):
        return _static(req.path.removeprefix("static/"))
    found = next(
        ((r, m) for r in ROUTES if r.method == req.method and (m := r.pattern.fullmatch(req.path))), None
    )
    if found is None:
        allowed = any(r.pattern.fullmatch(req.path) for r in ROUTES)
        return _error_page(405 if allowed else 404, "no such page" if not allowed else "method not allowed")
    handler_route, match = found
    if app.settings.console is None or app.settings.public_url is None:
        return _error_page(
            503,
            "The console is not configured: set WARDEN_CONSOLE_CLIENT_ID and WARDEN_CONSOLE_SECRET_NAME, and "
            "WARDEN_PUBLIC_URL where Azure does not set it (the sign-in comes back to <public url>/api/console/auth; "
            "README, Configuration).",
        )
    session = None
    if req.session_id is not None:
        session = await app.stores.sessions.get(req.session_id, app.real_clock())
    visit = Visit(app, req, session, correlation_id)
    try:
        if handler_route.signed_in:
            if session is None or not session.signed_in:
                if req.method != "GET":
                    raise Refused(403, "your session has ended: sign in again")
                rest = {k: x for k, x in req.query.items() if k != "login_hint"}
                hint = req.query.get("login_hint", "")
                return visit.page("signin.html", next=_console_path(req.path, rest), login_hint=hint[:254])
            if req.method == "POST":
                _check_csrf(app, req, session)
        return await handler_route.handler(visit, match)
    except Refused as refused:
        return visit.page("error.html", refused.status, status=refused.status, detail=refused.detail)
    except DomainError as exc:
        status = next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 400)
        return visit.page("error.html", status, status=status, detail=exc.detail)
    except Exception:
        log.exception("console error (correlation id %s)", correlation_id)
        return visit.page(
            "error.html", 500, status=500, detail=f"unexpected error; correlation id {correlation_id}"
        )


def _console_path(path: str, query: dict[str, str]) -> str:
    target = "/api/console" + (f"/{path}" if path else "")
    return target + (f"?{urlencode(query)}" if query else "")


def _check_csrf(app: Container, req: Request, session: ConsoleSession) -> None:
    origin = req.headers.get("origin")
    public = app.settings.public_url or ""
    if origin and origin != "null" and public and _origin(origin) != _origin(public):
        raise Refused(403, "this form was sent from another site")
    given = req.field("csrf")
    if not given or not secrets.compare_digest(given.encode(), session.csrf.encode()):
        raise Refused(403, "the form's CSRF token is missing or wrong: reload the page and try again")


def _origin(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}".lower()


def _static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        return _error_page(404, "no such file")
    body = (HERE / "static" / name).read_text()
    response = Response(200, body, kind)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _error_page(status: int, detail: str) -> Response:
    html = (
        templates()
        .get_template("error.html")
        .render(session=None, is_admin=False, csrf="", path="", status=status, detail=detail)
    )
    return Response(status, html)


# ---------------------------------------------------------------------------------------------------- sign-in
def _signin(app: Container) -> tuple[MsalSignIn, str]:
    console = app.settings.console
    assert console is not None and app.settings.public_url
    redirect_uri = f"{app.settings.public_url}/api/console/auth"
    client = ConsoleApp(app.settings.api_tenant_id, console.client_id, redirect_uri)
    return MsalSignIn(app.authority, client), console.secret_name


def _flow_secret(session_id: str) -> str:
    """The Key Vault secret holding a sign-in's MSAL flow: named by a hash of the pre-sign-in session id."""
    return flow_secret(session_key(session_id))


def _secure(app: Container) -> bool:
    return (app.settings.public_url or "").startswith("https://")


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a console page only (never another site: open redirect)."""
    if value and value.startswith("/api/console") and "//" not in value and "\\" not in value:
        return value
    return "/api/console"


@route("GET", r"signin", signed_in=False)
async def signin(v: Visit, _: re.Match[str]) -> Response:
    signin_client, secret_name = _signin(v.app)
    credential = ClientCredential("secret", await v.app.secret_store.get(secret_name))
    hint = v.req.query.get("login_hint") or None
    if hint is not None and (len(hint) > 254 or not re.fullmatch(r"[^\s@]+@[^\s@]+", hint)):
        raise Refused(400, "login_hint must be a sign-in name (user@domain)")
    auth_uri, flow = await signin_client.begin(credential, hint)
    session_id = new_session_id()
    now = v.app.real_clock()
    await v.app.secret_store.set(_flow_secret(session_id), flow)
    await v.app.stores.sessions.create(
        ConsoleSession(
            id=session_id,
            expires=now + dt.timedelta(seconds=PENDING_SECONDS),
            csrf=secrets.token_urlsafe(32),
            pending=True,
            next_path=_safe_next(v.req.query.get("next")),
        )
    )
    cookie = session_cookie(session_id, secure=_secure(v.app), max_age=PENDING_SECONDS)
    return redirect(auth_uri, 302, cookie)


@route("GET", r"auth", signed_in=False)
async def signed_in(v: Visit, _: re.Match[str]) -> Response:
    pending = v.session
    if pending is None or not pending.pending:
        raise Refused(400, "this sign-in did not start here or took too long: sign in again")
    secret_name = _flow_secret(pending.id)
    flow = await v.app.secret_store.find(secret_name)
    # Single use: whatever happens next, this pre-sign-in session and its flow are gone.
    await v.app.stores.sessions.end(pending.id)
    await v.app.secret_store.delete(secret_name)
    if flow is None:
        raise Refused(400, "this sign-in was already used: sign in again")
    signin_client, name = _signin(v.app)
    credential = ClientCredential("secret", await v.app.secret_store.get(name))
    try:
        token, claims = await signin_client.complete(credential, flow, v.req.query)
        principal = await v.app.token_validator.validate(token)
    except SignInRefused as exc:
        raise Refused(401, exc.reason) from None
    except Unauthenticated as exc:
        raise Refused(401, f"the sign-in's token was refused: {exc.reason}") from None
    if not principal.may("reader"):
        log_event(log, "console.signin_refused", object_id=principal.object_id, reason="no Warden role")
        raise Refused(403, "your account holds no Warden role (Warden.Admin or Warden.Reader): ask an admin")
    session_id = new_session_id()  # a new id at sign-in: a planted pre-sign-in cookie gains nothing
    session = ConsoleSession(
        id=session_id,
        expires=v.app.real_clock() + dt.timedelta(seconds=SIGNED_IN_SECONDS),
        csrf=secrets.token_urlsafe(32),
        object_id=principal.object_id,
        name=str(claims.get("name") or ""),
        username=str(claims.get("preferred_username") or claims.get("upn") or ""),
        roles=frozenset(r for r in principal.roles if r in (ADMIN_ROLE, READER_ROLE)),
    )
    await v.app.stores.sessions.create(session)
    actor = Actor(principal.actor, v.correlation_id)
    await v.app.auditor.record(actor, "console.signed_in", after={"roles": sorted(session.roles)})
    log_event(log, "console.signed_in", object_id=principal.object_id, roles=sorted(session.roles))
    cookie = session_cookie(session_id, secure=_secure(v.app), max_age=SIGNED_IN_SECONDS)
    return redirect(_safe_next(pending.next_path), 303, cookie)


@route("POST", r"signout")
async def signout(v: Visit, _: re.Match[str]) -> Response:
    assert v.session is not None
    await v.app.stores.sessions.end(v.session.id)
    await v.app.auditor.record(Actor(v.principal.actor, v.correlation_id), "console.signed_out")
    return redirect("/api/console", 303, session_cookie("", secure=_secure(v.app), max_age=0))


# ------------------------------------------------------------------------------------------------------ pages
def dump(model: BaseModel | None) -> Any:
    return model.model_dump(mode="json") if model is not None else None


def _held(directories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"directory": d, "run": r}
        for d in directories
        for r in d.get("lastRuns") or []
        if r.get("status") == "held"
    ]


@route("GET", r"")
async def overview(v: Visit, _: re.Match[str]) -> Response:
    directories = dump(await v.call("list_directories"))["items"]
    health = (await v.app.health()).to_json()
    return v.page("overview.html", directories=directories, held=_held(directories), health=health)


@route("GET", r"directories/{id}")
async def directory(v: Visit, m: re.Match[str]) -> Response:
    params = {"directoryId": m["id"]}
    d = dump(await v.call("get_directory", params))
    protected = dump(await v.call("list_protected_accounts", params))
    return v.page("directory.html", d=d, protected=protected["items"])


@route("POST", r"directories/{id}/reconcile")
async def reconcile(v: Visit, m: re.Match[str]) -> Response:
    dry_run = v.req.field("dryRun") == "true"
    started = await v.call("reconcile_directory", {"directoryId": m["id"]}, body={"dryRun": dry_run})
    return redirect(f"/api/console/directories/{m['id']}/runs/{started.runId}")


@route("POST", r"directories/{id}/deactivate")
async def deactivate(v: Visit, m: re.Match[str]) -> Response:
    await v.call("deactivate_directory", {"directoryId": m["id"]}, query={"confirm": v.req.field("confirm")})
    return redirect("/api/console")


@route("GET", r"directories/{id}/runs/{run}")
async def run(v: Visit, m: re.Match[str]) -> Response:
    params = {"directoryId": m["id"], "runId": m["run"]}
    q = {k: v.req.query.get(k) for k in ("action", "cursor") if v.req.query.get(k)}
    r = dump(await v.call("get_run", params, query={**q, "limit": PAGE_SIZE}))
    d = dump(await v.call("get_directory", {"directoryId": m["id"]}))
    return v.page("run.html", r=r, d=d, action=q.get("action", ""))


async def _confirmed_run_action(v: Visit, m: re.Match[str], name: str) -> Response:
    d = dump(await v.call("get_directory", {"directoryId": m["id"]}))
    if v.req.field("confirm") != d["name"]:
        raise Refused(400, f"type the directory's name, {d['name']}, to confirm")
    await v.call(name, {"directoryId": m["id"], "runId": m["run"]})
    return redirect(f"/api/console/directories/{m['id']}/runs/{m['run']}")


@route("POST", r"directories/{id}/runs/{run}/approve")
async def approve(v: Visit, m: re.Match[str]) -> Response:
    return await _confirmed_run_action(v, m, "approve_run")


@route("POST", r"directories/{id}/runs/{run}/discard")
async def discard(v: Visit, m: re.Match[str]) -> Response:
    return await _confirmed_run_action(v, m, "discard_run")


# ------------------------------------------------------------------------------------------------------ imports
@route("GET", r"directories/{id}/import")
async def candidates(v: Visit, m: re.Match[str]) -> Response:
    q = {k: v.req.query[k] for k in ("text", "domain", "enabled", "cursor") if v.req.query.get(k)}
    found = dump(await v.call("list_m365_users", {"directoryId": m["id"]}, query={**q, "limit": PAGE_SIZE}))
    d = dump(await v.call("get_directory", {"directoryId": m["id"]}))
    return v.page("import.html", d=d, found=found, filters=q)


@route("POST", r"directories/{id}/import")
async def start_import(v: Visit, m: re.Match[str]) -> Response:
    bind = v.req.field("bind") == "true"
    if v.req.field("scope") == "all":
        body: dict[str, Any] = {"all": True, "bind": bind}
        text = v.req.field("text")
        if text:
            body["filter"] = {"text": text}
    else:
        chosen = [x for x in v.req.form.get("m365UserId", []) if x]
        if not chosen:
            raise Refused(400, "choose at least one account to import, or import all of them")
        body = {"m365UserIds": chosen, "bind": bind}
    started = await v.call("start_import", {"directoryId": m["id"]}, body=body)
    return redirect(f"/api/console/imports/{started.jobId}")


@route("GET", r"imports/{id}")
async def import_job(v: Visit, m: re.Match[str]) -> Response:
    state = v.req.query.get("state") or None
    q = {"state": state, "cursor": v.req.query.get("cursor") or None, "limit": PAGE_SIZE}
    job = dump(await v.call("get_import", {"jobId": m["id"]}, query={k: x for k, x in q.items() if x}))
    return v.page("import_job.html", job=job, state=state or "")


@route("GET", r"imports/{id}/progress")
async def import_progress(v: Visit, m: re.Match[str]) -> Response:
    """The progress of an import as JSON, for the page's script (the page itself works without it)."""
    job = dump(await v.call("get_import", {"jobId": m["id"]}, query={"limit": 1}))
    keys = ("status", "total", "done", "imported", "skipped", "failed", "progressPercent", "ratePerSecond")
    body = {k: job[k] for k in keys} | {"etaSeconds": job.get("etaSeconds")}
    return Response(200, json.dumps(body), "application/json; charset=utf-8")


@route("POST", r"imports/{id}/undo")
async def undo_import(v: Visit, m: re.Match[str]) -> Response:
    if v.req.field("confirm") != "undo":
        raise Refused(400, "type undo to confirm")
    report = dump(await v.call("undo_import", {"jobId": m["id"]}))
    job = dump(await v.call("get_import", {"jobId": m["id"]}, query={"limit": PAGE_SIZE}))
    return v.page("import_job.html", job=job, state="", undone=report)


# ------------------------------------------------------------------------------------------------ users, groups
async def _directory_names(v: Visit) -> dict[str, str]:
    """Each directory's name by id, for the pages that only name directories: the directories' own rows, not their
    views (a view counts the directory's links, a scan of its index: the overview's cost, not a user page's)."""
    return {d.id: d.name for d in sorted(await v.app.stores.directories.all(), key=lambda d: d.name.lower())}


STATES = ("active", "suspended", "terminated")
STATUSES = ("pending", "synced", "blocked", "skipped", "error", "needs_attention")


@route("GET", r"users")
async def users(v: Visit, _: re.Match[str]) -> Response:
    text = (v.req.query.get("q") or "").strip()
    q: dict[str, Any] = {"limit": PAGE_SIZE}
    if text:
        q["email" if "@" in text else "employeeId"] = text
    for key in ("name", "state", "directoryId", "status", "cursor"):
        if v.req.query.get(key, "").strip():
            q[key] = v.req.query[key].strip()
    listed = dump(await v.call("list_users", query=q))
    directories = [{"id": i, "name": n} for i, n in (await _directory_names(v)).items()]
    filters = {k: v.req.query.get(k, "") for k in ("name", "q", "state", "directoryId", "status")}
    return v.page(
        "users.html",
        listed=listed,
        directories=directories,
        filters=filters,
        states=STATES,
        statuses=STATUSES,
    )


@route("GET", r"users/{id}")
async def user(v: Visit, m: re.Match[str]) -> Response:
    found, audit, names = await asyncio.gather(
        v.call("get_user", {"id": m["id"]}),
        v.call("list_audit", query={"userId": m["id"], "limit": 20}),
        _directory_names(v),
    )
    u, audit = dump(found), dump(audit)
    # A group deleted meanwhile is shown by its id: one missing name does not fail the page.
    groups = await asyncio.gather(
        *(v.call("get_group", {"id": g}) for g in u["groups"][:PAGE_SIZE]), return_exceptions=True
    )
    group_names = {g.id: g.name for g in groups if not isinstance(g, BaseException)}
    return v.page("user.html", u=u, audit=audit["items"], names=names, group_names=group_names)


@route("GET", r"groups")
async def groups(v: Visit, _: re.Match[str]) -> Response:
    q = {"limit": PAGE_SIZE} | ({"cursor": v.req.query["cursor"]} if v.req.query.get("cursor") else {})
    listed = dump(await v.call("list_groups", query=q))
    return v.page("groups.html", listed=listed)


@route("GET", r"groups/{id}")
async def group(v: Visit, m: re.Match[str]) -> Response:
    g = dump(await v.call("get_group", {"id": m["id"]}))
    names = await _directory_names(v)
    return v.page("group.html", g=g, names=names)


# ------------------------------------------------------------------------------------------- audit, HR sources
@route("GET", r"audit")
async def audit(v: Visit, _: re.Match[str]) -> Response:
    q: dict[str, Any] = {"limit": PAGE_SIZE}
    for key in ("userId", "directoryId", "since", "correlationId", "cursor"):
        if v.req.query.get(key):
            q[key] = v.req.query[key]
    listed = dump(await v.call("list_audit", query=q))
    filters = {k: v.req.query.get(k, "") for k in ("userId", "directoryId", "since", "correlationId")}
    return v.page("audit.html", listed=listed, filters=filters)


@route("GET", r"sources")
async def sources(v: Visit, _: re.Match[str]) -> Response:
    listed = dump(await v.call("list_hr_sources", query={"limit": PAGE_SIZE}))
    return v.page("sources.html", listed=listed, rotated=None)


@route("POST", r"sources/{id}/rotate")
async def rotate_source(v: Visit, m: re.Match[str]) -> Response:
    rotated = dump(await v.call("rotate_hr_source", {"sourceId": m["id"]}))
    listed = dump(await v.call("list_hr_sources", query={"limit": PAGE_SIZE}))
    # The new credential is shown once, on this answer only (no-store), as Entra shows a new client secret.
    return v.page("sources.html", listed=listed, rotated={"id": m["id"], **rotated})
