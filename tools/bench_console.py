"""``make bench``, store section, (e): the console's pages rendered server-side with the store's N users (100,000),
each beside a floor of the store reads that page cannot do without, done bare with the SDK in the same run.

The console is measured in process (``functions.console.app.answer``: the session read, the API operations the page
runs, Jinja2's rendering), as the function app runs it behind the host; the host's own HTTP work is the store
section's (c). A signed-in admin's session is written first, as a sign-in writes it.

- a user's page (``/console/users/{id}``: the user, its links, its last 20 audit entries, the directories' names)
  against one bare query of that user's partition, which holds all of those rows but the directories';
- the users' first page (``/console/users``: 50 users with their links) against a bare query of the first 50 user
  rows and, concurrently, each one's relations row (its bindings and links): the data the page shows, read once.

Azurite answers a partition query by scanning the whole table (see ``tools.bench_store``), so the absolute times
here grow with N where Table Storage's would not; the ratios compare like with like.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

PAGE = 50


async def measure(
    container: Any,
    users_floor: Any,
    user_ids: Sequence[str],
    runs: int,
    timed: Callable[[Callable[[], Awaitable[Any]], Any, Any], Awaitable[Any]],
    gauges: Any,
    samples: Callable[[], Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    from functions.console.app import answer
    from functions.console.web import Request
    from shared.adapters.tables.sessions import ConsoleSession, new_session_id
    from shared.adapters.tables.users import RELATIONS, USER
    from shared.service.access import ADMIN_ROLE

    session_id = new_session_id()
    await container.stores.sessions.create(
        ConsoleSession(
            id=session_id,
            expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            csrf=secrets.token_urlsafe(16),
            object_id="00000000-0000-4000-8000-00000000bench",
            name="Bench Admin",
            roles=frozenset({ADMIN_ROLE}),
        )
    )

    async def page(path: str) -> Any:
        req = Request("GET", path, {}, {}, {}, {"warden_console": session_id})
        response = await answer(container, req, "bench")
        if response.status != 200:
            raise AssertionError(f"/console/{path}: {response.status} {str(response.body)[:500]}")
        return response

    async def user_floor(uid: str) -> Any:
        return [e async for e in users_floor.query_entities(f"PartitionKey eq '{uid}'")]

    async def list_floor() -> Any:
        rows: list[Any] = []
        async for batch in users_floor.query_entities(f"RowKey eq '{USER}'", results_per_page=PAGE).by_page():
            rows = [e async for e in batch]
            break
        return await asyncio.gather(*(users_floor.get_entity(r["PartitionKey"], RELATIONS) for r in rows))

    out = {k: samples() for k in ("user floor", "user page", "list floor", "list page")}
    for round_ in range(runs + 1):
        uid = random.choice(user_ids)
        pairs: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("user floor", functools.partial(user_floor, uid)),
            ("user page", functools.partial(page, f"users/{uid}")),
            ("list floor", list_floor),
            ("list page", functools.partial(page, "users")),
        ]
        for name, run in pairs if round_ % 2 else pairs[::-1]:
            await timed(run, gauges, out[name] if round_ else None)
        if round_ % 10 == 0:
            say(f"  console pages: round {round_}/{runs}" + (" (warm-up)" if not round_ else ""))
    return out


def report(console: dict[str, Any], users: int, ms: Callable[[float], str]) -> list[str]:
    lines = [
        f"(e) console pages, in process, {users:,} users, {len(console['user page'].values)} rounds".ljust(48)
        + f"{'median':>12} {'ratio':>6} {'p95':>12} {'ratio':>6}   target"
    ]
    for floor_name, page_name, label, floor_label in (
        (
            "user floor",
            "user page",
            "/console/users/{id}: user, links, audit",
            "floor: bare query of its partition",
        ),
        (
            "list floor",
            "list page",
            "/console/users: the first 50 users",
            "floor: 50 user rows + their relations",
        ),
    ):
        f, p = console[floor_name], console[page_name]
        lines.append(f"    {floor_label:<44}{ms(f.median)} {'':6} {ms(f.p95)}")
        lines.append(
            f"    {label:<44}{ms(p.median)} {p.median / f.median:5.2f}x {ms(p.p95)} {p.p95 / f.p95:5.2f}x   "
            "<= 200 ms server-side"
        )
    return lines
