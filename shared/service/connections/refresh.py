"""The token refresh timer (``token_refresh``, SPEC §3 timers, rule 18): every hour, every connected directory.

Per directory, at most two requests to Entra and Graph:
- a token taken from Entra, never a cache: app-only every round (it proves the secret or certificate is still
  accepted), delegated when the last refresh is older than ``max_age`` (7 days by default), so that the refresh
  token's 90-day inactivity window never closes; otherwise the delegated token comes from MSAL's cache;
- one Graph ``$batch`` with ``GET /organization`` (``onPremisesSyncEnabled``: rule 17 is re-checked, not only at
  connect) and ``GET /applications(appId='…')`` (the credential's ``endDateTime``; without Application.Read.All,
  the date an admin gave stays and ``warnings`` says so).
Entra refusing the credential or the refresh token marks the directory ``needs_reactivation`` (``ConnectionStatus``);
an expiry within 7 days is announced once; a directory that works with syncs still deferred replays them. Each
round is a run record: directories checked, refreshed, expiring, lapsed, failed and skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shared.domain.connections import credential_in_use, expiring
from shared.domain.errors import CredentialRefused
from shared.domain.model import ON_PREMISES_SYNC_REASON, Directory
from shared.domain.protection import RoleHolders as Holders
from shared.domain.runs import Run
from shared.service.connections.ports import ConnectionCheck, Deferrals, DirectoryConnections
from shared.service.connections.status import ConnectionStatus, credential_words
from shared.service.context import Actor, Auditor
from shared.service.ports import Clock, DirectoryRepository, Ids

ROUNDS = "token-refresh"
"""The runs' partition of the rounds (they belong to no one directory)."""
CONCURRENCY = 64
Outcome = Literal["checked", "refreshed", "lapsed", "failed", "skipped"]


class RoundLog(Protocol):
    async def add(self, run: Run) -> None: ...

    async def latest(self, directory_id: str, limit: int) -> list[Run]: ...


@dataclass(frozen=True)
class Checked:
    directory_id: str
    outcome: Outcome
    detail: str | None = None
    expiring: bool = False
    replayed: int = 0


class RoleHolders(Protocol):
    """Rule 23's role holders kept current (``shared.service.tenant.protection.Protections``): as the check read
    them, or read now; a failure to read them is recorded as "not readable", not raised."""

    async def take(
        self, directory: Directory, actor: Actor, holders: Holders | None, failure: str | None = None
    ) -> object: ...

    async def refresh_quietly(self, directory: Directory, actor: Actor) -> object: ...


@dataclass
class RefreshRound:
    run: Run
    results: list[Checked] = field(default_factory=list)


class TokenRefresh:
    def __init__(
        self,
        directories: DirectoryRepository,
        connections: DirectoryConnections,
        status: ConnectionStatus,
        deferrals: Deferrals,
        runs: RoundLog,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        *,
        max_age: dt.timedelta = dt.timedelta(days=7),
        concurrency: int = CONCURRENCY,
        role_holders: RoleHolders | None = None,
    ) -> None:
        self.role_holders = role_holders
        self.directories = directories
        self.connections = connections
        self.status = status
        self.deferrals = deferrals
        self.runs = runs
        self.auditor = auditor
        self.clock = clock
        self.ids = ids
        self.max_age = max_age
        self.concurrency = concurrency

    async def round(self, actor: Actor) -> RefreshRound:
        started = self.clock()
        gate = asyncio.Semaphore(self.concurrency)

        waiting = await self.deferrals.waiting()

        async def one(d: Directory) -> Checked:
            async with gate:
                try:
                    return await self.check(d, actor, replay=d.id in waiting)
                except Exception as exc:  # even recording its failure failed: the round goes on without it
                    return Checked(d.id, "failed", getattr(exc, "detail", None) or type(exc).__name__)

        results = list(await asyncio.gather(*(one(d) for d in await self.directories.all())))
        counts = Counter(r.outcome for r in results)
        tally = {
            "directories": len(results),
            "checked": counts["checked"] + counts["refreshed"],
            "refreshed": counts["refreshed"],
            "expiring": sum(1 for r in results if r.expiring),
            "lapsed": counts["lapsed"],
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "replayed": sum(r.replayed for r in results),
        }
        errors = [f"{r.directory_id}: {r.detail}" for r in results if r.outcome == "failed"]
        run = Run(
            self.ids(),
            ROUNDS,
            "token_refresh",
            False,
            "failed" if errors else "done",
            actor.name,
            started,
            started_at=started,
            finished_at=self.clock(),
            counts=tally,
            error="; ".join(errors)[:2000] or None,
        )
        await self.runs.add(run)
        return RefreshRound(run, results)

    async def rounds(self, limit: int) -> list[Run]:
        return await self.runs.latest(ROUNDS, limit)

    async def check(self, d: Directory, actor: Actor, *, replay: bool = True) -> Checked:
        """One directory's check. ``replay``: it may have deferred syncs to queue again once it works."""
        if d.paused:
            return Checked(d.id, "skipped", d.status)
        now = self.clock()
        stale = d.token_refreshed_at is None or now - d.token_refreshed_at >= self.max_age
        try:
            check = await self.connections.check(d, refresh=d.auth_mode == "app" or stale)
        except CredentialRefused as refused:
            await self.status.lapsed(refused, actor)
            return Checked(d.id, "lapsed", refused.error)
        except Exception as exc:  # one directory's failure is its own: recorded, the round goes on
            detail = getattr(exc, "detail", None) or type(exc).__name__
            await self.status.change(
                d.id,
                lambda x: dataclasses.replace(
                    x, checked_at=now, check_warnings=(f"the last check failed: {detail}",)
                ),
            )
            return Checked(d.id, "failed", detail)
        changed = await self.status.change(d.id, lambda x: self._apply(x, check, now))
        if changed is None:
            return Checked(d.id, "skipped", "gone")
        before, after = changed
        await self._rule_17(before, after, actor)
        if self.role_holders is not None and after.writable:  # rule 23: who must never be written to
            if check.roles_read:  # in the check's own $batch: no request of its own
                await self.role_holders.take(after, actor, check.roles, check.roles_failure)
            else:
                await self.role_holders.refresh_quietly(after, actor)
        announce = (
            expiring(after.credential_expires_at, now) and after.expiry_warned != after.credential_expires_at
        )
        if announce:
            marked = await self.status.change(
                d.id, lambda x: dataclasses.replace(x, expiry_warned=x.credential_expires_at)
            )
            if marked is not None:
                await self.status.announce_expiry(marked[1], actor, credential_words(after))
        replayed = await self.status.replay(d.id, actor.correlation_id) if after.writable and replay else 0
        return Checked(
            d.id,
            "refreshed" if check.refreshed else "checked",
            expiring=expiring(after.credential_expires_at, now),
            replayed=replayed,
        )

    def _apply(self, d: Directory, check: ConnectionCheck, now: dt.datetime) -> Directory:
        warnings: list[str] = []
        expires, source, key_id = d.credential_expires_at, d.expiry_source, d.credential_key_id
        if check.credentials is None:
            what = credential_words(d)
            known = (
                f"the {what}'s expiry shown is the date an admin gave"
                if source == "admin" and expires
                else f"the {what}'s expiry shown is the certificate's own"
                if source == "certificate"
                else f"the {what}'s expiry shown was read earlier"
                if expires
                else f"the {what}'s expiry is not known"
            )
            warnings.append(f"{check.unreadable or 'the app registration could not be read'}; {known}")
        else:
            found, ambiguous = credential_in_use(
                check.credentials,
                kind=d.credential,
                key_id=d.credential_key_id,
                hint=check.hint,
                sha1=d.certificate_sha1,
            )
            if found is None:
                warnings.append(
                    f"the {credential_words(d)} Warden uses was not found among the app registration's credentials"
                )
            else:
                expires, source, key_id = found.end, "graph", found.key_id
                if ambiguous:
                    warnings.append(ambiguous)
        status, reason = d.status, d.status_reason
        if check.on_premises_sync_enabled is True and d.status == "active":
            status, reason = "blocked", ON_PREMISES_SYNC_REASON
        elif check.on_premises_sync_enabled is not True and d.status_reason == ON_PREMISES_SYNC_REASON:
            status, reason = "active", None
        return dataclasses.replace(
            d,
            status=status,
            status_reason=reason,
            credential_expires_at=expires,
            expiry_source=source,
            credential_key_id=key_id,
            checked_at=now,
            token_refreshed_at=now if check.refreshed else d.token_refreshed_at,
            check_warnings=tuple(warnings),
        )

    async def _rule_17(self, before: Directory, after: Directory, actor: Actor) -> None:
        if before.status == after.status:
            return
        await self.auditor.record(
            actor,
            "directory.blocked" if after.status == "blocked" else "directory.unblocked",
            directory_id=after.id,
            before={"status": before.status, "reason": before.status_reason},
            after={"status": after.status, "reason": after.status_reason},
        )
