"""The admin console through the local functions host, in Debian's Chromium driven by Playwright: people of
Warden's tenant sign in through the simulated Entra ID (authorization code + PKCE), then work with the keyboard
alone — approve a held plan, import accounts, search the audit. axe-core checks every page; the run writes the
README's screenshots. Then the console's security at the HTTP level: CSRF, session fixation, sign-out, headers,
and no token or secret anywhere a browser or a log could show it."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, new_user
from tools import demo, procs

ADMIN = demo.CONSOLE_PEOPLE["admin"]
READER = demo.CONSOLE_PEOPLE["reader"]
SCREENSHOTS = procs.ROOT / "docs" / "console"
AXE = procs.ROOT / "node_modules" / "axe-core" / "axe.min.js"
WAIT_MS = 30_000
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
"""A JSON Web Token (header.payload.signature, base64url): an access or ID token, wherever it shows."""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "Debian's chromium is missing: `make test` installs it (apt-get install chromium, as root); install it "
            "by hand where that cannot run"
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def tenant(warden: WardenHost) -> Iterator[ss.Tenant]:
    t = ss.make_tenant(warden, [f"cn{uuid.uuid4().hex[:8]}.example"], name=f"Fabrikam {uuid.uuid4().hex[:6]}")
    yield t
    ss.drop_tenant(warden, t)


def context(browser: Browser, *, phone: bool = False, bypass_csp: bool = False) -> BrowserContext:
    """A fresh browser profile. The simulated cloud's TLS certificate comes from the CA made at set-up, which this
    Chromium does not know (only the sign-in's hop through the simulated Entra ID uses it)."""
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    return browser.new_context(ignore_https_errors=True, viewport=size, bypass_csp=bypass_csp)


def sign_in(ctx: BrowserContext, warden: WardenHost, person: str) -> Page:
    """Sign ``person`` in through the simulated Entra ID (the sign-in link with a login_hint, as Entra's own
    account picker would choose them), landing on the overview."""
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{warden.url}/api/console/signin?login_hint={person}")
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    return page


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element ``selector`` names has the focus (keyboard only; fails after ``limit``)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus after {limit} Tabs")


def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (its default WCAG 2.x A/AA rules)."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def held_run(warden: WardenHost, t: ss.Tenant) -> tuple[str, list[str]]:
    """A reconcile held by the mass-change guard: two leavers re-enabled behind Warden's back, the guard at one."""
    leavers = ss.provision(warden, t, 4)[:2]
    for user_id, _ in leavers:
        warden.ok("DELETE", f"/users/{user_id}/directories/{t.id}", 204)
    for user_id, _ in leavers:
        ss.wait_link(warden, user_id, t.id, "blocked")
    ids = [link["m365UserId"] for _, link in leavers]
    for m in ids:
        t.graph.patch_user(m, {"accountEnabled": True})
    warden.ok(
        "PATCH", f"/directories/{t.id}", json={"options": {"massChangeGuard": {"percent": 10, "count": 1}}}
    )
    started = warden.call("POST", f"/directories/{t.id}/reconcile", json={"dryRun": False})
    assert started.status_code == 202, started.text
    run_id = str(started.json()["runId"])
    ss.wait_for(
        lambda: warden.ok("GET", f"/directories/{t.id}/runs/{run_id}")["status"],
        lambda status: status == "held",
        what="the reconcile held by the guard",
    )
    return run_id, ids


# ------------------------------------------------------------------------------------------------- browser flows
def test_an_admin_approves_a_held_plan_with_the_keyboard_and_the_accounts_are_blocked_in_graph(
    browser: Browser, warden: WardenHost, tenant: ss.Tenant
) -> None:
    run_id, blocked_ids = held_run(warden, tenant)
    ctx = context(browser)
    documents: list[dict[str, str]] = []
    try:
        page = ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("response", lambda r: documents.append(r.headers) if r.url.startswith(warden.url) else None)
        # A link to the console naming the account (as Entra's login_hint): the simulated Entra ID has no
        # account picker and signs in the account named.
        page.goto(f"{warden.url}/api/console?login_hint={ADMIN}")
        assert page.get_by_role("heading", name="Sign in to Warden").is_visible()
        tab_to(page, "a.button")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Overview", exact=True).wait_for()
        assert page.get_by_role("rowheader", name=re.compile(tenant.name)).is_visible()
        assert page.get_by_role("heading", name="Plans waiting for approval").is_visible()
        shot(page, "overview")

        tab_to(page, f'a[href$="/runs/{run_id}"]')
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(f".*/runs/{run_id}$"))
        assert page.get_by_role("heading", name="Held by the mass-change guard").is_visible()
        rows = page.locator("table.plan tbody tr")
        assert rows.filter(has_text="block").count() == 2
        shot(page, "held-run")

        rlog = ss.requests_log(warden)
        mark = rlog.mark()
        approve = page.get_by_role("button", name="Approve and apply")
        assert approve.is_disabled(), "the button waits for the typed confirmation"
        tab_to(page, "#approve-confirm")
        page.keyboard.type(tenant.name)
        assert approve.is_enabled()
        tab_to(page, "form.confirm button[type=submit]")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(f".*/runs/{run_id}$"))
        ss.wait_for(
            lambda: warden.ok("GET", f"/directories/{tenant.id}/runs/{run_id}")["status"],
            lambda status: status == "done",
            what="the approved run",
        )
        for m in blocked_ids:  # Graph reads are eventually consistent (the simulated cloud's replication lag)
            ss.wait_for(
                lambda m=m: tenant.graph.get_user(m)["accountEnabled"],
                lambda enabled: enabled is False,
                what=f"the approved block in Graph (writes: {rlog.writes(mark, tenant.graph.tenant_id)})",
            )
        page.reload()
        assert page.get_by_role("heading", name=re.compile("done")).is_visible()
        audit = warden.ok("GET", "/audit", params={"directoryId": tenant.id, "limit": "50"})["items"]
        approvals = [e for e in audit if e["action"] == "run.approve"]
        assert approvals and approvals[0]["actor"].startswith("admin:"), "audited as the person who approved"
    finally:
        ctx.close()
    pages = [h for h in documents if h.get("content-type", "").startswith("text/html")]
    assert pages and all("default-src 'self'" in h.get("content-security-policy", "") for h in pages)
    assert all(h.get("x-frame-options") == "DENY" for h in pages)


def test_a_reader_sees_no_approve_button_and_a_forged_post_is_refused(
    browser: Browser, warden: WardenHost
) -> None:
    t = ss.make_tenant(warden, [f"rd{uuid.uuid4().hex[:8]}.example"], name=f"Reader {uuid.uuid4().hex[:6]}")
    try:
        run_id, ids = held_run(warden, t)
        ctx = context(browser)
        try:
            page = sign_in(ctx, warden, READER)
            assert page.get_by_text("Reader", exact=True).is_visible()
            page.goto(f"{warden.url}/api/console/directories/{t.id}/runs/{run_id}")
            assert page.get_by_role("heading", name="Held by the mass-change guard").is_visible()
            assert page.get_by_role("button", name="Approve and apply").count() == 0
            assert page.get_by_text("An admin (Warden.Admin) can approve").is_visible()
            csrf = page.locator("input[name=csrf]").first.get_attribute("value")
            forged = page.request.post(
                f"{warden.url}/api/console/directories/{t.id}/runs/{run_id}/approve",
                form={"csrf": csrf or "", "confirm": t.name},
                max_redirects=0,
            )
            assert forged.status == 403, forged.text()
            assert "Warden.Admin" in forged.text()
        finally:
            ctx.close()
        assert warden.ok("GET", f"/directories/{t.id}/runs/{run_id}")["status"] == "held"
        assert all(t.graph.get_user(m)["accountEnabled"] is True for m in ids), "nothing was applied"
    finally:
        ss.drop_tenant(warden, t)


def test_an_import_started_with_the_keyboard_reaches_100_percent_on_screen(
    browser: Browser, warden: WardenHost, tenant: ss.Tenant
) -> None:
    prefix = f"imp{uuid.uuid4().hex[:6]}"
    made = [tenant.graph.create_user(f"{prefix}{i}@{tenant.domains[0]}") for i in range(6)]
    ctx = context(browser)
    try:
        page = sign_in(ctx, warden, ADMIN)
        page.goto(f"{warden.url}/api/console/directories/{tenant.id}/import")
        tab_to(page, "#text")
        page.keyboard.type(prefix)
        page.keyboard.press("Enter")  # submits the filter form
        page.wait_for_url(re.compile(f".*text={prefix}.*"))
        assert page.locator("input[name=m365UserId]").count() == len(made)
        shot(page, "import-candidates")
        tab_to(page, "#scope-chosen")
        page.keyboard.press("ArrowDown")  # the radio group: every account starting with the prefix
        assert page.locator("#scope-all").is_checked()
        tab_to(page, "form[method=post] > button[type=submit]")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/api/console/imports/[0-9a-f-]{36}$"))
        page.wait_for_function(
            "() => document.querySelector('[data-field=progressPercent]').textContent.trim() === '100.0'"
            " && document.querySelector('[data-field=status]').textContent.trim() === 'done'",
            timeout=WAIT_MS,
        )
        assert page.locator("#import-bar").get_attribute("value") in ("100", "100.0")
        assert page.locator("[data-field=imported]").inner_text() == str(len(made))
        shot(page, "import-progress")
    finally:
        ctx.close()
    users = warden.ok("GET", "/users", params={"directoryId": tenant.id, "limit": "200"})["items"]
    imported = {u["email"].split("@")[0] for u in users if u["email"].startswith(prefix)}
    assert imported == {f"{prefix}{i}" for i in range(6)}


def test_audit_search_by_user_with_the_keyboard(browser: Browser, warden: WardenHost) -> None:
    someone = new_user(warden)
    request = f"corr-{uuid.uuid4().hex}"
    warden.ok(
        "PATCH",
        f"/users/{someone['id']}",
        json={"jobTitle": "Cartographer"},
        headers={"x-correlation-id": request},
    )
    ctx = context(browser)
    try:
        page = sign_in(ctx, warden, READER)
        tab_to(page, 'nav a[href="/api/console/audit"]')
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/api/console/audit$"))
        tab_to(page, "#userId")
        page.keyboard.type(someone["id"])
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(f".*userId={someone['id']}.*"))
        rows = page.locator("table.audit tbody tr")
        assert rows.count() >= 2
        texts = rows.all_inner_texts()
        assert all(f"user {someone['id'][:8]}" in t for t in texts), "only this user's entries"
        assert any("Cartographer" in t for t in texts)
        shot(page, "audit")
        tab_to(page, f'a[href*="correlationId={request}"]')  # what that one request caused, and nothing else
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(f".*correlationId={request}.*"))
        assert rows.count() == 1 and "Cartographer" in rows.first.inner_text()
        page.go_back()
        tab_to(page, f'a[href="/api/console/users/{someone["id"]}"]')
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(f".*/users/{someone['id']}$"))
        assert page.get_by_role("heading", name=someone["displayName"]).is_visible()
    finally:
        ctx.close()


def test_every_page_passes_axe_on_a_desktop_and_a_phone(
    browser: Browser, warden: WardenHost, tenant: ss.Tenant
) -> None:
    someone = new_user(warden)
    pages = [
        "",
        f"/directories/{tenant.id}",
        f"/directories/{tenant.id}/import",
        "/users",
        "/users?name=ada&state=active",
        f"/users/{someone['id']}",
        "/groups",
        "/audit",
        "/sources",
    ]
    found: dict[str, list[dict[str, Any]]] = {}
    for phone in (False, True):
        ctx = context(browser, phone=phone, bypass_csp=True)  # axe is injected as a script of the test's own
        try:
            page = sign_in(ctx, warden, ADMIN)
            for path in pages:
                page.goto(f"{warden.url}/api/console{path}")
                violations = axe(page)
                if violations:
                    found[f"{'phone' if phone else 'desktop'} {path or '/'}"] = violations
            if phone:
                page.goto(f"{warden.url}/api/console")
                shot(page, "overview-phone")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390 + 1, f"the overview scrolls sideways on a phone ({width} px)"
        finally:
            ctx.close()
    assert found == {}, json.dumps(found, indent=1)


# ------------------------------------------------------------------------------------------------ HTTP security
def sim_client(warden: WardenHost) -> httpx.Client:
    ca = ssl.create_default_context(cafile=warden.stack.sim.ca)
    return httpx.Client(verify=ca, timeout=30, trust_env=False)


def http_sign_in(warden: WardenHost, person: str) -> tuple[httpx.Client, str, str]:
    """(a client holding the signed-in cookie, the pre-sign-in session id, the signed-in one)."""
    client = httpx.Client(base_url=warden.url, timeout=30, follow_redirects=False)
    start = client.get("/api/console/signin", params={"login_hint": person})
    assert start.status_code == 302, start.text
    pending = client.cookies["warden_console"]
    with sim_client(warden) as sim:
        authorized = sim.get(start.headers["location"])
    assert authorized.status_code == 302, authorized.text
    back = client.get(authorized.headers["location"])
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/api/console"
    cookie = back.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/api/console" in cookie
    return client, pending, client.cookies["warden_console"]


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/api/console/users")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_the_session_id_changes_at_sign_in_and_the_planted_one_is_worthless(warden: WardenHost) -> None:
    client, pending, signed_in = http_sign_in(warden, ADMIN)
    with closing(client):
        assert signed_in != pending, "a new session id at sign-in (session fixation)"
        overview = client.get("/api/console")
        assert overview.status_code == 200 and "Directories" in overview.text
    with httpx.Client(base_url=warden.url, cookies={"warden_console": pending}, timeout=30) as planted:
        page = planted.get("/api/console")
        assert page.status_code == 200 and "Sign in to Warden" in page.text, (
            "the pre-sign-in id signs no one in"
        )


def test_a_post_without_its_csrf_token_or_with_another_is_refused(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    client, _, _ = http_sign_in(warden, ADMIN)
    with closing(client):
        url = f"/api/console/directories/{tenant.id}/reconcile"
        form = {"dryRun": "true"}
        assert client.post(url, data=form).status_code == 403
        assert client.post(url, data={**form, "csrf": "not-the-token"}).status_code == 403
        other, _, _ = http_sign_in(warden, ADMIN)
        with closing(other):
            assert client.post(url, data={**form, "csrf": csrf_of(other)}).status_code == 403, (
                "another session's token"
            )
        token = csrf_of(client)
        cross = client.post(url, data={**form, "csrf": token}, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
        ok = client.post(url, data={**form, "csrf": token})
        assert ok.status_code == 303 and "/runs/" in ok.headers["location"]


def test_sign_out_ends_the_session_and_clears_the_cookie(warden: WardenHost) -> None:
    client, _, session_id = http_sign_in(warden, READER)
    with closing(client):
        token = csrf_of(client)
        out = client.post("/api/console/signout", data={"csrf": token})
        assert out.status_code == 303
        assert "Max-Age=0" in out.headers["set-cookie"]
    with httpx.Client(base_url=warden.url, cookies={"warden_console": session_id}, timeout=30) as old:
        assert "Sign in to Warden" in old.get("/api/console").text
        assert old.post("/api/console/signout", data={"csrf": token}).status_code == 403


def test_every_answer_carries_the_headers_and_no_token_or_secret_shows(
    warden: WardenHost, tenant: ss.Tenant
) -> None:
    client, _, session_id = http_sign_in(warden, ADMIN)
    world = warden.stack.world
    secrets = [world.console_client_secret, world.demo_client_secret, *world.dev_client_secrets.values()]
    with closing(client):
        for path in ("", f"/directories/{tenant.id}", "/users", "/groups", "/audit", "/sources", "/nowhere"):
            answer = client.get(f"/api/console{path}")
            assert answer.status_code == (404 if path == "/nowhere" else 200), path
            h = answer.headers
            assert "frame-ancestors 'none'" in h["content-security-policy"], path
            assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
            assert h["cache-control"] == "no-store" and h["referrer-policy"] == "no-referrer"
            assert not JWT.search(answer.text), f"a JWT on {path}"
            assert not any(s in answer.text for s in secrets), path
    assert not session_id.startswith("eyJ") and len(session_id) >= 40, (
        "the cookie holds a random id, not a token"
    )
    log = Path(warden.log).read_text(errors="replace")
    assert not JWT.search(log) and not any(s in log for s in secrets)
    assert session_id not in log, "a session id is a credential: never logged"
    assert "auth?code=" not in log and "/auth?" not in log, "the sign-in's authorization code is never logged"
    unsigned = httpx.get(f"{warden.url}/api/console", timeout=30)
    assert "default-src 'self'" in unsigned.headers["content-security-policy"]
    assert "Sign in to Warden" in unsigned.text


def test_a_reader_is_refused_every_action_whatever_the_form(warden: WardenHost, tenant: ss.Tenant) -> None:
    client, _, _ = http_sign_in(warden, READER)
    with closing(client):
        token = csrf_of(client)
        for path, form in (
            (f"/directories/{tenant.id}/reconcile", {"dryRun": "true"}),
            (f"/directories/{tenant.id}/deactivate", {"confirm": tenant.name}),
            (f"/directories/{tenant.id}/import", {"scope": "all"}),
        ):
            answer = client.post(f"/api/console{path}", data={**form, "csrf": token})
            assert answer.status_code == 403, (path, answer.text[:300])
    assert warden.ok("GET", f"/directories/{tenant.id}")["status"] == "active"


def test_a_code_brought_back_without_the_browsers_cookie_signs_no_one_in(warden: WardenHost) -> None:
    """The callback without the browser's pre-sign-in cookie (a code replayed elsewhere) signs no one in."""
    client = httpx.Client(base_url=warden.url, timeout=30, follow_redirects=False)
    with closing(client):
        start = client.get("/api/console/signin", params={"login_hint": ADMIN})
        with sim_client(warden) as sim:
            authorized = sim.get(start.headers["location"])
        elsewhere = httpx.get(authorized.headers["location"], timeout=30, follow_redirects=False)
        assert elsewhere.status_code == 400 and "set-cookie" not in elsewhere.headers
        # the browser that started the sign-in still completes it afterwards:
        assert client.get(authorized.headers["location"]).status_code == 303
