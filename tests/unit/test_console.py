"""The console's pure parts: where a sign-in may send the browser back to, the session cookie's attributes, what a
page's log line names, and the headers every answer carries."""

from __future__ import annotations

import pytest

from functions.console.app import _page_name, _safe_next
from functions.console.web import SECURITY_HEADERS, session_cookie


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "https://evil.example/api/console",
        "//evil.example/api/console",
        "/api/console//evil.example",
        "/api/console\\..\\x",
        "/api/users",
        "javascript:alert(1)",
    ],
)
def test_a_sign_in_returns_only_to_a_console_page(given: str | None) -> None:
    assert _safe_next(given) == "/api/console"


def test_a_console_page_with_its_query_is_where_a_sign_in_returns() -> None:
    assert _safe_next("/api/console/users?state=active") == "/api/console/users?state=active"


def test_the_session_cookie_is_http_only_lax_scoped_and_secure_over_https() -> None:
    cookie = session_cookie("abc", secure=True, max_age=60)
    parts = {p.strip() for p in cookie.split(";")}
    assert {
        "warden_console=abc",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/console",
        "Max-Age=60",
        "Secure",
    } == parts
    assert "Secure" not in session_cookie("abc", secure=False, max_age=60)
    assert "Max-Age=0" in session_cookie("", secure=False, max_age=0)


def test_a_page_is_logged_without_its_ids_or_its_query() -> None:
    assert _page_name(
        "directories/0b7c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4/runs/1c8d0e2f-3a4b-4c5d-9e7f-8091a2b3c4d5"
    ) == ("directories/{id}/runs/{id}")
    assert _page_name("") == "overview"


def test_every_answer_forbids_framing_inline_script_and_caching() -> None:
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert SECURITY_HEADERS["Cache-Control"] == "no-store"
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
