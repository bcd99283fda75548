"""A connection's status over time (rule 18): lapsing, waiting, coming back.

- ``lapsed``: Entra refused the directory's credentials or refresh token for good (``CredentialRefused``): the
  directory becomes ``needs_reactivation`` with the AADSTS code and a sentence saying what happened and what to
  do; audited, logged as a WARNING and notified, once per lapse.
- ``defer``: while a directory is not active its per-user syncs are kept (``Deferrals``), never dropped or
  poisoned; ``replay`` queues them again, oldest first, once it works (each sync reads the user as the store has
  it then: rule 8), and the mirrors of the groups bound to it (a mirror attempted meanwhile was skipped).
- ``reactivated``: the directory works again: its deferred syncs replay, a reconcile runs under the mass-change
  guard (rule 19) to catch up on whatever changed meanwhile, and the notify URL hears of it. Nobody is unbound.
- ``announce_expiry``: a credential expiring within 7 days is a WARNING, an audit entry and a notification, once
  per expiry date.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from shared.domain.connections import lapse_reason
from shared.domain.errors import CredentialRefused, PreconditionFailed
from shared.domain.model import Directory
from shared.domain.runs import Run
from shared.service.connections.ports import Alerts, Deferrals
from shared.service.context import Actor, Auditor
from shared.service.notifications import Notifier
from shared.service.ports import Clock, DirectoryRepository, GroupQueue, SyncQueue

REPLAY_CHUNK = 32
UPDATE_ATTEMPTS = 5


class Resync(Protocol):
    async def start(self, directory_id: str, dry_run: bool, actor: Actor) -> Run: ...


def audit_view(d: Directory) -> dict[str, object]:
    return {"status": d.status, "reason": d.status_reason, "code": d.status_code}


class ConnectionStatus:
    def __init__(
        self,
        directories: DirectoryRepository,
        deferrals: Deferrals,
        sync_queue: SyncQueue,
        mirrors: GroupQueue,
        resync: Resync,
        notifier: Notifier,
        auditor: Auditor,
        alerts: Alerts,
        clock: Clock,
    ) -> None:
        self.directories = directories
        self.deferrals = deferrals
        self.sync_queue = sync_queue
        self.mirrors = mirrors
        self.resync = resync
        self.notifier = notifier
        self.auditor = auditor
        self.alerts = alerts
        self.clock = clock

    async def change(
        self, directory_id: str, edit: Callable[[Directory], Directory | None]
    ) -> tuple[Directory, Directory] | None:
        """Apply ``edit`` to the stored directory (None: leave it), ETag-guarded, read again on a conflict.
        (before, after), or None when the directory is gone or ``edit`` declined."""
        for _ in range(UPDATE_ATTEMPTS):
            found = await self.directories.get(directory_id)
            if found is None:
                return None
            before, etag = found
            after = edit(before)
            if after is None:
                return None
            try:
                await self.directories.update(dataclasses.replace(after, updated_at=self.clock()), etag)
            except PreconditionFailed:
                continue
            return before, after
        raise PreconditionFailed(f"directory {directory_id} kept changing")

    # ------------------------------------------------------------------------------------------------ lapse
    async def refused(self, refusal: CredentialRefused, actor: Actor) -> None:
        """``Pauses`` of the per-user sync: a token it needed was refused."""
        await self.lapsed(refusal, actor)

    async def lapsed(self, refusal: CredentialRefused, actor: Actor) -> Directory | None:
        def edit(d: Directory) -> Directory | None:
            if d.status == "needs_reactivation":
                return None  # announced already
            code, reason = lapse_reason(d.id, d.auth_mode, refusal.error, refusal.codes)
            return dataclasses.replace(d, status="needs_reactivation", status_reason=reason, status_code=code)

        changed = await self.change(refusal.directory_id, edit)
        if changed is None:
            return None
        before, after = changed
        self.alerts.warning(
            "directory.needs_reactivation",
            directoryId=after.id,
            code=after.status_code,
            error=refusal.error,
            reason=after.status_reason,
        )
        await self.auditor.record(
            actor,
            "directory.needs_reactivation",
            result=f"failed: {refusal.error}" + (f" {after.status_code}" if after.status_code else ""),
            directory_id=after.id,
            before=audit_view(before),
            after=audit_view(after),
        )
        await self.notifier.notify(
            "directory.needs_reactivation",
            after,
            {"status": after.status, "code": after.status_code, "reason": after.status_reason},
        )
        return after

    # ---------------------------------------------------------------------------------------------- deferral
    async def defer(self, directory_id: str, user_id: str, correlation_id: str | None) -> None:
        await self.deferrals.defer(directory_id, user_id, self.clock(), correlation_id)

    async def replay(self, directory_id: str, correlation_id: str | None) -> int:
        """Queue the directory's deferred syncs again, oldest first (forgetting each once queued), and the mirrors
        of its bound groups."""
        pending = await self.deferrals.pending(directory_id)
        for start in range(0, len(pending), REPLAY_CHUNK):
            chunk = pending[start : start + REPLAY_CHUNK]
            await self.sync_queue.enqueue([d.user_id for d in chunk], correlation_id)
            await self.deferrals.done(chunk)
        groups = await self.directories.bound_groups(directory_id)
        if groups:
            await self.mirrors.enqueue([(g, directory_id) for g in groups], correlation_id)
        return len(pending)

    # -------------------------------------------------------------------------------------------- reactivated
    async def reactivated(self, before: Directory, after: Directory, actor: Actor) -> int:
        """The directory works again (``after`` is stored): replay, reconcile under the guard, announce."""
        replayed = await self.replay(after.id, actor.correlation_id)
        run = await self.resync.start(after.id, False, actor) if after.writable else None
        await self.auditor.record(
            actor,
            "directory.reactivated",
            directory_id=after.id,
            before=audit_view(before),
            after={**audit_view(after), "replayed": replayed, "reconcileRun": run.id if run else None},
        )
        await self.notifier.notify(
            "directory.reactivated",
            after,
            {"status": after.status, "replayed": replayed, "reconcileRun": run.id if run else None},
        )
        return replayed

    # ------------------------------------------------------------------------------------------------ expiry
    async def announce_expiry(self, directory: Directory, actor: Actor, what: str) -> None:
        expires = directory.credential_expires_at
        assert expires is not None
        days = max(0, (expires - self.clock()).days)
        self.alerts.warning(
            "directory.credential_expiring",
            directoryId=directory.id,
            expiresAt=expires.isoformat(),
            credential=what,
        )
        await self.auditor.record(
            actor,
            "directory.credential_expiring",
            directory_id=directory.id,
            after={"credential": what, "expiresAt": expires.isoformat(), "source": directory.expiry_source},
        )
        await self.notifier.notify(
            "directory.credential_expiring",
            directory,
            {
                "credential": what,
                "expiresAt": expires.isoformat(),
                "daysLeft": days,
                "source": directory.expiry_source,
            },
        )


def credential_words(d: Directory) -> str:
    return "certificate" if d.credential == "certificate" else "client secret"
