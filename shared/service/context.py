"""Who asks, under which correlation id, and the audit entry every state change leaves behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.domain.model import AuditEntry
from shared.service.ports import AuditLog, Clock, Ids


@dataclass(frozen=True)
class Actor:
    """The caller of a use case: ``admin:<oid>``, ``hris:<source>``, ``timer:<name>`` or ``system``."""

    name: str
    correlation_id: str | None = None


@dataclass(frozen=True)
class Auditor:
    log: AuditLog
    clock: Clock
    ids: Ids

    async def record(
        self,
        actor: Actor,
        action: str,
        *,
        result: str = "succeeded",
        user_id: str | None = None,
        directory_id: str | None = None,
        group_id: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """``before``/``after`` are what the caller chose to show: never a secret or a password."""
        entry = self.entry(
            actor,
            action,
            result=result,
            user_id=user_id,
            directory_id=directory_id,
            group_id=group_id,
            before=before,
            after=after,
        )
        await self.log.record(entry)
        return entry

    def entry(
        self,
        actor: Actor,
        action: str,
        *,
        result: str = "succeeded",
        user_id: str | None = None,
        directory_id: str | None = None,
        group_id: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """An entry, not yet written: for ``record_all`` (a job writing a chunk's entries together)."""
        return AuditEntry(
            id=self.ids(),
            at=self.clock(),
            actor=actor.name,
            action=action,
            result=result,
            correlation_id=actor.correlation_id,
            user_id=user_id,
            directory_id=directory_id,
            group_id=group_id,
            before=before,
            after=after,
        )

    async def record_all(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            await self.log.record_all(entries)
