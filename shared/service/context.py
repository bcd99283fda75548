"""Who asks, under which correlation id, and the audit entry every state change leaves behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from shared.domain.model import AuditEntry
from shared.service.ports import AuditLog, Clock, Ids


@dataclass(frozen=True)
class Actor:
    """The caller of a use case: ``admin:<oid>``, ``hris:<source>``, ``timer:<name>`` or ``system``."""

    name: str
    correlation_id: str | None = None


class EntryFields(TypedDict, total=False):
    """What an audit entry says besides who did what: the result (``succeeded`` unless told), whom and what it
    concerns, and before → after as the caller chose to show them."""

    result: str
    user_id: str | None
    directory_id: str | None
    group_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class Auditor:
    log: AuditLog
    clock: Clock
    ids: Ids

    async def record(self, actor: Actor, action: str, **fields: Unpack[EntryFields]) -> AuditEntry:
        """``before``/``after`` are what the caller chose to show: never a secret or a password."""
        entry = self.entry(actor, action, **fields)
        await self.log.record(entry)
        return entry

    def entry(self, actor: Actor, action: str, **fields: Unpack[EntryFields]) -> AuditEntry:
        """An entry, not yet written: for ``record_all`` (a job writing many entries together)."""
        return AuditEntry(
            id=self.ids(),
            at=self.clock(),
            actor=actor.name,
            action=action,
            result=fields.get("result", "succeeded"),
            correlation_id=actor.correlation_id,
            user_id=fields.get("user_id"),
            directory_id=fields.get("directory_id"),
            group_id=fields.get("group_id"),
            before=fields.get("before"),
            after=fields.get("after"),
        )

    async def record_all(self, entries: Sequence[AuditEntry], *, users_written: bool = False) -> None:
        """``users_written``: each entry's row in its user's partition went with the user's change already."""
        if entries:
            await self.log.record_all(entries, users_written=users_written)
