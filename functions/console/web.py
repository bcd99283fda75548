"""The console's HTTP plumbing: the request as the pages see it, the answer, the session cookie and the headers every
page carries (a strict Content-Security-Policy, no framing, no sniffing, no referrer, no caching)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

import azure.functions as func

COOKIE = "warden_console"
COOKIE_PATH = "/api/console"
MAX_FORM_BYTES = 64 * 1024

SECURITY_HEADERS = {
    # Everything from Warden itself: no inline script or style, no CDN, forms post only back here, and no page
    # may be framed (clickjacking); the sign-in leaves through a link, which form-action does not govern.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The sign-in's callback URL carries a code: it must not leak to another site through Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    """Below ``/api/console``, without leading or trailing slash (``""`` is the overview)."""
    query: dict[str, str]
    form: dict[str, list[str]]
    headers: Mapping[str, str]
    cookies: dict[str, str]

    @property
    def session_id(self) -> str | None:
        value = self.cookies.get(COOKIE)
        return value if value and len(value) <= 128 else None

    def field(self, name: str) -> str:
        values = self.form.get(name) or [""]
        return values[0].strip()


class BadForm(Exception):
    """A form that cannot be read (too large, not urlencoded)."""


def parse(req: func.HttpRequest) -> Request:
    path = (req.route_params.get("path") or "").strip("/")
    cookies: dict[str, str] = {}
    try:
        jar: SimpleCookie = SimpleCookie()
        jar.load(req.headers.get("cookie") or "")
        cookies = {k: m.value for k, m in jar.items()}
    except CookieError:
        cookies = {}
    form: dict[str, list[str]] = {}
    if req.method == "POST":
        raw = req.get_body() or b""
        if len(raw) > MAX_FORM_BYTES:
            raise BadForm(f"the form is {len(raw)} bytes; at most {MAX_FORM_BYTES} are accepted")
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if raw and ctype != "application/x-www-form-urlencoded":
            raise BadForm("forms are sent as application/x-www-form-urlencoded")
        try:
            form = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            raise BadForm("the form is not valid urlencoded UTF-8") from None
    return Request(
        method=req.method.upper(),
        path=path,
        query={k: v for k, v in req.params.items()},
        form=form,
        headers={k.lower(): v for k, v in req.headers.items()},
        cookies=cookies,
    )


@dataclass
class Response:
    status: int
    body: str | bytes = ""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def to_http(self) -> func.HttpResponse:
        mimetype, _, params = self.content_type.partition(";")
        charset = params.split("=", 1)[1].strip() if "charset=" in params else None
        return func.HttpResponse(
            self.body,
            status_code=self.status,
            mimetype=mimetype.strip(),
            charset=charset or "utf-8",
            headers={**SECURITY_HEADERS, **self.headers},
        )


def session_cookie(value: str, *, secure: bool, max_age: int) -> str:
    """The session cookie: HttpOnly (no script reads it), SameSite=Lax (no cross-site POST carries it), Secure
    over https, scoped to the console's path; ``max_age`` 0 clears it."""
    parts = [f"{COOKIE}={value}", f"Path={COOKIE_PATH}", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def redirect(location: str, status: int = 303, cookie: str | None = None) -> Response:
    headers = {"Location": location}
    if cookie:
        headers["Set-Cookie"] = cookie
    return Response(status, "", headers=headers)
