"""The applier: a directory's plan items as Graph writes in ``$batch`` requests, and what each answer means.

Per item, the calls travel together in one batch: ``POST /users`` then the manager ``$ref`` (by UPN: the new
id is not known inside the batch); ``PATCH /users/{id}`` then the manager ``$ref``; a block's PATCH then
``revokeSignInSessions`` (``dependsOn``: sessions are revoked only once the account is disabled). Never a
DELETE of a user.

Answers map by HTTP status and Graph error code (one bad item never stops the others):
- 2xx → applied;
- 404 on a linked id → ``rematch`` (the account is gone or was never ours: look again by email);
- 400 "Another object with the same value for property userPrincipalName already exists" on a create →
  ``exists`` (a retry after a lost answer, or a twin: find it and link it; never a second account);
- other 400s → ``failed``, recorded with Graph's message (a validation problem of this user);
- 401/403 → ``stopped``: the app lacks a permission; nothing more is sent to this directory this round;
- 5xx and throttling that outlived the retries → ``retry`` (the sync fails and its queue message is retried).
https://learn.microsoft.com/en-us/graph/errors, .../json-batching, .../api/user-post-users
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.domain.model import Directory
from shared.domain.planner import MANAGER, PlanItem
from shared.service.ports import M365, BatchCall, BatchResult

Outcome = Literal["applied", "failed", "rematch", "exists", "stopped", "retry", "none"]
DUPLICATE = "another object with the same value for property userprincipalname already exists"
PasswordSource = Callable[[PlanItem], Awaitable[str]]


def random_password(length: int = 24) -> str:
    """A strong random password meeting Entra's cloud policy (upper, lower, digit and symbol)."""
    symbols = "!@#$%^&*-_=+?"
    alphabet = string.ascii_letters + string.digits + symbols
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(
            any(c in group for c in value)
            for group in (string.ascii_lowercase, string.ascii_uppercase, string.digits, symbols)
        ):
            return value


@dataclass(frozen=True)
class Applied:
    item: PlanItem
    outcome: Outcome
    m365_user_id: str | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    manager_applied: bool = True
    writes: int = 0

    @property
    def error(self) -> str | None:
        if self.outcome in ("applied", "none"):
            return None
        return f"HTTP {self.status} {self.code or ''}: {self.message or self.outcome}".replace("  ", " ")


def _manager_call(
    cid: str, user_ref: str, manager: str | None, graph_root: str, depends_on: str | None
) -> BatchCall:
    if manager is None:
        return BatchCall(cid, "DELETE", f"/users/{user_ref}/manager/$ref", depends_on=depends_on)
    return BatchCall(
        cid,
        "PUT",
        f"/users/{user_ref}/manager/$ref",
        {"@odata.id": f"{graph_root}/users/{manager}"},
        depends_on,
    )


async def calls_for(n: int, item: PlanItem, graph_root: str, password: PasswordSource) -> list[BatchCall]:
    """The Graph calls of one plan item (ids ``<n>.<step>``)."""
    props = {k: after for k, (_, after) in item.changes.items() if k != MANAGER}
    manager = item.changes.get(MANAGER)
    out: list[BatchCall] = []
    if item.action == "create":
        body = {
            **props,
            "passwordProfile": {"password": await password(item), "forceChangePasswordNextSignIn": False},
        }
        out.append(BatchCall(f"{n}.write", "POST", "/users", body))
        if manager is not None and manager[1] is not None:
            out.append(
                _manager_call(
                    f"{n}.manager", props["userPrincipalName"], manager[1], graph_root, f"{n}.write"
                )
            )
        return out
    target = item.m365_user_id
    if props:
        out.append(BatchCall(f"{n}.write", "PATCH", f"/users/{target}", props))
    if manager is not None:
        out.append(
            _manager_call(f"{n}.manager", str(target), manager[1], graph_root, out[-1].id if out else None)
        )
    if item.revoke_sessions:
        out.append(
            BatchCall(
                f"{n}.revoke",
                "POST",
                f"/users/{target}/revokeSignInSessions",
                depends_on=f"{n}.write" if props else None,
            )
        )
    return out


def interpret(item: PlanItem, answers: Sequence[BatchResult]) -> Applied:
    """One item's outcome from the answers to its calls."""
    writes = len(answers)
    main = next((a for a in answers if a.id.endswith((".write", ".revoke"))), None)
    manager = next((a for a in answers if a.id.endswith(".manager")), None)
    created_id = None
    if main is not None and item.action == "create" and main.status == 201 and isinstance(main.body, dict):
        created_id = str(main.body.get("id"))
    m365_id = created_id or item.m365_user_id
    failure = next(
        (a for a in answers if not 200 <= a.status < 300 and a.status != 424 and a is not manager), None
    )
    if failure is None:
        # A manager that could not be set (not visible yet, or gone) is retried by the next sync: the link
        # only remembers a manager that was written.
        manager_applied = manager is None or 200 <= manager.status < 300
        return Applied(item, "applied", m365_id, manager_applied=manager_applied, writes=writes)
    status, code, message = failure.status, failure.error_code, failure.error_message
    if status in (401, 403):
        outcome: Outcome = "stopped"
    elif status == 404 and item.action != "create":
        outcome = "rematch"
    elif status == 400 and item.action == "create" and DUPLICATE in message.lower():
        outcome = "exists"
    elif status == 400 or 404 <= status < 500:
        outcome = "failed"
    else:
        outcome = "retry"
    return Applied(item, outcome, m365_id, status, code, message, manager_applied=False, writes=writes)


async def apply_items(
    m365: M365,
    directory: Directory,
    items: Sequence[PlanItem],
    graph_root: str,
    password: PasswordSource,
) -> list[Applied]:
    """Write ``items`` (of one directory) and tell each one's outcome. A 401/403 stops the directory: the
    items not yet answered are reported ``stopped`` without being sent."""
    results: dict[int, Applied] = {n: Applied(i, "none") for n, i in enumerate(items) if not i.writes}
    per_item: dict[int, list[BatchCall]] = {}
    for n, item in enumerate(items):
        if item.writes:
            per_item[n] = await calls_for(n, item, graph_root, password)
    order = sorted(per_item)
    stopped: Applied | None = None
    for start in range(0, len(order), 64):
        group = order[start : start + 64]
        if stopped is not None:
            for n in group:
                results[n] = Applied(
                    items[n], "stopped", items[n].m365_user_id, stopped.status, stopped.code, stopped.message
                )
            continue
        calls = [c for n in group for c in per_item[n]]
        answers = await m365.run_batch(directory, calls)
        for n in group:
            results[n] = interpret(items[n], [answers[c.id] for c in per_item[n] if c.id in answers])
            if results[n].outcome == "stopped" and stopped is None:
                stopped = results[n]
    return [results[n] for n in range(len(items))]


def describe_changes(item: PlanItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) for the audit; the password is never part of a plan item, so never of the audit."""
    return ({k: v[0] for k, v in item.changes.items()}, {k: v[1] for k, v in item.changes.items()})
