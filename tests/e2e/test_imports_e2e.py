"""Importing existing M365 accounts (rule 13) through the local host: candidates, a 1,000-account job with
clashes, a chunk delivered twice, undo that keeps what was touched, and the 48-hour window."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import remember_secret
from tests.e2e import sync_support as ss
from tests.e2e.conftest import QUIET_TIMERS, WardenHost, new_user
from tools import demo, procs

SEEDED = 1000
CLASHES = 50


@pytest.fixture(scope="module")
def seeded(warden: WardenHost) -> Iterator[ss.Tenant]:
    """A tenant with 1,000 accounts that Warden does not know yet, connected as a directory."""
    sim = warden.stack.sim
    tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    secret = remember_secret(f"imp-{uuid.uuid4().hex}")
    domain = f"imp{uuid.uuid4().hex[:8]}.example"
    body = {
        "tenantId": tenant_id,
        "displayName": "Import Co",
        "domains": [{"id": domain, "isDefault": True, "isVerified": True}],
        "clients": [{"clientId": client_id, "clientSecret": secret, "roles": demo.DEMO_ROLES}],
        "seedUsers": SEEDED,
    }
    assert sim.control("POST", "/_sim/tenants", json=body).status_code == 201
    connect = {
        "name": "Import Co",
        "tenantId": tenant_id,
        "auth": {"mode": "app", "clientId": client_id, "clientSecret": secret},
    }
    directory = warden.ok("POST", "/directories", 201, json=connect)
    t = ss.Tenant(ss.Graph(sim, tenant_id, client_id, secret), [domain], directory, "Import Co")
    yield t
    ss.drop_tenant(warden, t)


def all_accounts(t: ss.Tenant) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    body = t.graph.call(
        "GET",
        "/users",
        params={"$select": "id,userPrincipalName,mail,mailNickname,displayName", "$top": "999"},
    )
    while True:
        out += body["value"]
        if "@odata.nextLink" not in body:
            return out
        body = t.graph._send(
            "GET", body["@odata.nextLink"], headers={"Authorization": f"Bearer {t.graph.token()}"}
        ).json()


def wait_job(
    warden: WardenHost, job_id: str, statuses: set[str], seen: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while True:
        job: dict[str, Any] = warden.ok("GET", f"/imports/{job_id}")
        if seen is not None:
            seen.append(job)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def test_candidates_are_the_unlinked_accounts_with_whether_they_clash(
    warden: WardenHost, seeded: ss.Tenant
) -> None:
    page = warden.ok("GET", f"/directories/{seeded.id}/m365-users", params={"limit": "50"}, role="reader")
    assert len(page["items"]) == 50 and page["next"]
    first = page["items"][0]
    assert first["email"].endswith("@" + seeded.domains[0]) and first["exists"] is False
    more = warden.ok(
        "GET", f"/directories/{seeded.id}/m365-users", params={"limit": "50", "cursor": page["next"]}
    )
    assert not {c["m365UserId"] for c in page["items"]} & {c["m365UserId"] for c in more["items"]}
    text = first["userPrincipalName"][:8]
    narrowed = warden.ok("GET", f"/directories/{seeded.id}/m365-users", params={"text": text, "limit": "999"})
    assert narrowed["items"] and all(c["userPrincipalName"].startswith(text) for c in narrowed["items"])
    bad = warden.call(
        "GET", f"/directories/{seeded.id}/m365-users", params={"cursor": page["next"], "limit": "20"}
    )
    assert bad.status_code == 422, "a cursor continues only its own query"


@pytest.mark.timeout(400)
def test_importing_a_thousand_with_fifty_clashes_stages_950_and_skips_50_with_reasons(
    warden: WardenHost, seeded: ss.Tenant, tmp_path: Path
) -> None:
    accounts = all_accounts(seeded)
    assert len(accounts) == SEEDED
    for a in accounts[:CLASHES]:  # people Warden knows already, under the same email
        email = a["mail"] or a["userPrincipalName"]
        new_user(warden, email=email, username=f"w{uuid.uuid4().hex[:10]}")
    listed = warden.ok("GET", f"/directories/{seeded.id}/m365-users", params={"limit": "999"})
    assert sum(c["exists"] for c in listed["items"]) >= 1
    started = warden.call("POST", f"/directories/{seeded.id}/imports", json={"all": True})
    assert started.status_code == 202, started.text
    job_id = started.json()["jobId"]
    seen: list[dict[str, Any]] = []
    job = wait_job(warden, job_id, {"done"}, seen)
    assert (job["total"], job["imported"], job["skipped"], job["failed"]) == (
        SEEDED,
        SEEDED - CLASHES,
        CLASHES,
        0,
    )
    assert any(0 < s["done"] < s["total"] for s in seen), "progress was visible while it ran"
    skipped = warden.ok("GET", f"/imports/{job_id}", params={"state": "skipped", "limit": "200"})["items"][
        "items"
    ]
    assert len(skipped) == CLASHES and all("already used" in i["reason"] for i in skipped), skipped[:2]
    sample = next(a for a in accounts[CLASHES:] if a["mailNickname"])
    (user,) = warden.ok("GET", "/users", params={"email": sample["mail"] or sample["userPrincipalName"]})[
        "items"
    ]
    assert (user["state"], user["source"], user["username"]) == ("staged", "import", sample["mailNickname"])
    assert user["directories"] == [], "not bound: bind was not asked"

    # The same chunk delivered again imports nobody twice.
    conn = warden.stack.settings["AzureWebJobsStorage"]
    from azure.storage.queue import QueueClient

    with QueueClient.from_connection_string(conn, "import") as q:
        q.send_message(
            base64.b64encode(json.dumps({"type": "chunk", "jobId": job_id, "chunk": 0}).encode()).decode()
        )
    ss.drained(warden, "import")  # the chunk delivered again has been handled
    again = warden.ok("GET", f"/imports/{job_id}")
    assert (again["imported"], again["skipped"]) == (SEEDED - CLASHES, CLASHES)
    assert (
        len(
            warden.ok("GET", "/users", params={"email": sample["mail"] or sample["userPrincipalName"]})[
                "items"
            ]
        )
        == 1
    )

    # Undo: a user bound since the import is kept; the others go; M365 is not touched.
    imported = warden.ok("GET", f"/imports/{job_id}", params={"state": "imported", "limit": "5"})["items"][
        "items"
    ]
    keep = imported[0]["userId"]
    warden.ok("PATCH", f"/users/{imported[1]['userId']}", json={"jobTitle": "Edited after import"})
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    undone = warden.ok("POST", f"/imports/{job_id}/undo")
    kept = {k["userId"]: k["reason"] for k in undone["kept"]}
    assert kept == {imported[1]["userId"]: "edited since the import"}
    assert len(undone["removed"]) == SEEDED - CLASHES - 1
    assert warden.call("GET", f"/users/{imported[2]['userId']}").status_code == 404
    assert rlog.writes(mark, seeded.graph.tenant_id) == [], "undo writes nothing to M365"
    del keep
    assert warden.call("POST", f"/imports/{job_id}/undo").status_code == 409, "undone already"


def test_a_bound_import_takes_the_accounts_over_and_undo_keeps_bound_users(
    warden: WardenHost, seeded: ss.Tenant
) -> None:
    free = warden.ok("GET", f"/directories/{seeded.id}/m365-users", params={"limit": "200"})["items"]
    ids = [c["m365UserId"] for c in free if not c["exists"]][:2]
    started = warden.call(
        "POST", f"/directories/{seeded.id}/imports", json={"m365UserIds": ids, "bind": True}
    )
    job = wait_job(warden, started.json()["jobId"], {"done"})
    assert job["imported"] == 2
    items = warden.ok("GET", f"/imports/{job['id']}")["items"]["items"]
    for i in items:
        link = ss.wait_link(warden, i["userId"], seeded.id, "synced")
        assert link["m365UserId"] == i["m365UserId"], "taken over: the very account imported"
    undone = warden.ok("POST", f"/imports/{job['id']}/undo")
    assert undone["removed"] == [] and all(k["reason"] == "bound since the import" for k in undone["kept"])


def test_undo_after_48_hours_is_refused(warden: WardenHost, seeded: ss.Tenant, tmp_path: Path) -> None:
    free = warden.ok("GET", f"/directories/{seeded.id}/m365-users", params={"limit": "200"})["items"]
    ids = [c["m365UserId"] for c in free if not c["exists"]][:1]
    job = wait_job(
        warden,
        warden.call("POST", f"/directories/{seeded.id}/imports", json={"m365UserIds": ids}).json()["jobId"],
        {"done"},
    )
    later = dt.datetime.fromisoformat(job["undoUntil"].replace("Z", "+00:00")) + dt.timedelta(minutes=1)
    offset = (later - dt.datetime.now(dt.UTC)).total_seconds()
    env = {
        **os.environ,
        **warden.stack.settings,
        **QUIET_TIMERS,
        "WARDEN_CLOCK_OFFSET_SECONDS": f"{offset:.0f}",
    }
    port = procs.free_port()
    child = procs.start_funchost(port, env=env, log=tmp_path / "late.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            response = http.post(
                f"/api/imports/{job['id']}/undo", headers={"Authorization": f"Bearer {warden.token()}"}
            )
    finally:
        child.stop()
    assert response.status_code == 409 and "undo window" in response.json()["detail"]
