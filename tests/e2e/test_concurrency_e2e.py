"""Concurrent admin requests: uniqueness holds, If-Match lets exactly one writer win, and writers of
different fields never lose each other's changes (the store merges fields, it never writes a stale row)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.conftest import WardenHost, new_user, unique
from tools import demo

N = 20


def _parallel(warden: WardenHost, requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    token = warden.token("admin")

    def send(req: tuple[str, str, dict[str, Any]]) -> httpx.Response:
        method, path, kw = req
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        with httpx.Client(base_url=warden.url, timeout=60) as http:
            return http.request(method, f"/api{path}", headers=headers, **kw)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def test_twenty_concurrent_creates_of_one_email_make_exactly_one_user(warden: WardenHost) -> None:
    email = f"{unique()}@{demo.DEMO_DOMAIN}"
    bodies = [
        {"username": unique(), "email": email, "firstName": "Twin", "lastName": str(i)} for i in range(N)
    ]
    responses = _parallel(warden, [("POST", "/users", {"json": b}) for b in bodies])
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * (N - 1), codes
    found = warden.ok("GET", "/users", params={"email": email})["items"]
    assert (
        len(found) == 1 and found[0]["id"] == next(r for r in responses if r.status_code == 201).json()["id"]
    )


def test_twenty_concurrent_patches_with_one_if_match_let_exactly_one_win(warden: WardenHost) -> None:
    user = new_user(warden)
    etag = warden.call("GET", f"/users/{user['id']}").headers["ETag"]
    requests = [
        ("PATCH", f"/users/{user['id']}", {"json": {"jobTitle": f"title {i}"}, "headers": {"If-Match": etag}})
        for i in range(N)
    ]
    responses = _parallel(warden, requests)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * (N - 1), codes
    winner = next(r for r in responses if r.status_code == 200).json()["jobTitle"]
    assert warden.ok("GET", f"/users/{user['id']}")["jobTitle"] == winner


def test_concurrent_patches_of_different_fields_without_if_match_lose_nothing(warden: WardenHost) -> None:
    user = new_user(warden)
    changes = [
        {"jobTitle": "Chief"},
        {"department": "Finance"},
        {"displayName": "The Chief"},
        {"alternateEmail": "chief@example.org"},
        {"firstName": "Charlotte"},
        {"lastName": "Cho"},
        {"employeeId": unique("E")[:12]},
        {"timeZone": "Europe/Berlin"},
    ]
    for _ in range(2):
        responses = _parallel(warden, [("PATCH", f"/users/{user['id']}", {"json": c}) for c in changes])
        assert all(r.status_code == 200 for r in responses), [
            r.text for r in responses if r.status_code != 200
        ]
    final = warden.ok("GET", f"/users/{user['id']}")
    for change in changes:
        for field, value in change.items():
            assert final[field] == value, f"{field} was lost"


def test_concurrent_member_adds_count_every_member_once(warden: WardenHost) -> None:
    group = warden.ok("POST", "/groups", 201, json={"name": unique("Team ")})
    users = [new_user(warden) for _ in range(10)]
    requests = [("PUT", f"/groups/{group['id']}/members/{u['id']}", {}) for u in users for _ in range(2)]
    responses = _parallel(warden, requests)
    assert sorted(r.status_code for r in responses) == [200] * 10 + [201] * 10
    assert warden.ok("GET", f"/groups/{group['id']}")["memberCount"] == 10
