"""The admin console's sessions on Table Storage: PartitionKey = SHA-256 of the session id (hex), RowKey ``session``.

The browser holds the session id in an HttpOnly cookie; the table holds only its hash, so that reading the table
gives no usable session. A session is either a sign-in in progress, for at most ``PENDING_SECONDS`` (its MSAL flow,
which holds the PKCE verifier, is a Key Vault secret named after the session's hash, never a row), or a signed-in
person: object id, name, app roles and the CSRF token of their forms. No access, refresh or ID token is ever kept:
the console calls the service layer in-process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from shared.adapters.tables.base import (
    TableStore,
    delete,
    from_json,
    from_text,
    insert,
    page,
    read,
    required_time,
    to_json,
    to_text,
    to_time,
)

ROW = "session"
SIGNED_IN_SECONDS = 8 * 3600
"""A signed-in session lasts a working day, then the person signs in again (their roles are read afresh)."""
PENDING_SECONDS = 600
"""A sign-in must come back from Entra ID within 10 minutes (an authorization code lives 10 minutes too)."""
SWEEP_LIMIT = 1000
"""Expired sessions removed per sweep (the hourly timer's): more wait for the next one."""


def session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    """The cookie's value (never stored)."""
    expires: dt.datetime
    csrf: str
    pending: bool = False
    """A sign-in in progress (its flow in Key Vault), not yet a signed-in person."""
    object_id: str | None = None
    name: str | None = None
    username: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    next_path: str | None = None
    """Where a sign-in in progress returns to."""

    @property
    def signed_in(self) -> bool:
        return not self.pending and self.object_id is not None

    def __repr__(self) -> str:  # the id is a bearer credential: never in a log
        return f"ConsoleSession(object_id={self.object_id!r}, roles={sorted(self.roles)!r})"


def flow_secret(key: str) -> str:
    """The Key Vault secret holding a sign-in's MSAL flow, named by its pre-sign-in session's key (hash)."""
    return f"console-signin-{key[:48]}"


class FlowSecrets(Protocol):
    async def delete(self, name: str) -> None: ...


async def sweep(sessions: TableSessions, secrets: FlowSecrets, now: dt.datetime) -> int:
    """Remove the sessions past their expiry nobody came back to, and the MSAL flow in Key Vault of each sign-in
    abandoned on its way (a session expired while signed in holds none); how many were removed. The flow goes
    first: a session row left by a failure is found again by the next sweep."""
    expired = await sessions.expired(now)
    for key, pending in expired:
        if pending:
            await secrets.delete(flow_secret(key))
        await sessions.remove(key)
    return len(expired)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class TableSessions:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def create(self, session: ConsoleSession) -> None:
        table = await self.store.table("sessions")
        entity = {
            "PartitionKey": session_key(session.id),
            "RowKey": ROW,
            "Expires": to_time(session.expires),
            "Csrf": session.csrf,
            "Pending": session.pending,
            "ObjectId": to_text(session.object_id),
            "Name": to_text(session.name),
            "Username": to_text(session.username),
            "Roles": to_json(sorted(session.roles)),
            "Next": to_text(session.next_path),
        }
        if await insert(table, entity) is None:  # 256 random bits: a collision is a bug, not bad luck
            raise RuntimeError("a console session id was issued twice")

    async def get(self, session_id: str, now: dt.datetime) -> ConsoleSession | None:
        """The live session of ``session_id``; an expired one is deleted and None answered."""
        table = await self.store.table("sessions")
        e = await read(table, session_key(session_id), ROW)
        if e is None:
            return None
        expires = required_time(e.get("Expires"))
        if expires <= now:
            await delete(table, session_key(session_id), ROW)
            return None
        roles = from_json(e.get("Roles"), [])
        return ConsoleSession(
            id=session_id,
            expires=expires,
            csrf=str(e.get("Csrf", "")),
            pending=e.get("Pending") is True,
            object_id=from_text(e.get("ObjectId")),
            name=from_text(e.get("Name")),
            username=from_text(e.get("Username")),
            roles=frozenset(r for r in roles if isinstance(r, str)),
            next_path=from_text(e.get("Next")),
        )

    async def end(self, session_id: str) -> None:
        table = await self.store.table("sessions")
        await delete(table, session_key(session_id), ROW)

    async def expired(self, now: dt.datetime, limit: int = SWEEP_LIMIT) -> list[tuple[str, bool]]:
        """Sessions past their expiry that nobody came back to (an abandoned sign-in, a person who never signed
        out): each one's key (the id's hash) and whether it was a sign-in in progress; at most ``limit``."""
        table = await self.store.table("sessions")
        rows = await page(
            table,
            # Expires is kept as fixed-width ISO text (``to_time``): compared as text, it sorts by time.
            f"RowKey eq '{ROW}' and Expires lt '{to_time(now)}'",
            "sessions",
            None,
            limit,
        )
        return [(str(e["PartitionKey"]), e.get("Pending") is True) for e in rows[0]]

    async def remove(self, key: str) -> None:
        """Delete the session whose id hashes to ``key``."""
        table = await self.store.table("sessions")
        await delete(table, key, ROW)
