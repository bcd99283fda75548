"""HR sources as a resource (SPEC §3): create, list, read, change, disable, delete; their credentials (Key Vault
only: a SCIM bearer token or a Standard Webhooks secret Warden makes and shows once, or the private key BambooHR
made, which the admin stores); rotation with a 24-hour overlap; authenticating what a source sends (constant-time
comparisons); and what each source did lately (its last event, its last refusal, whether it has gone quiet).

The built-in ``standard`` source (``webhook``, behind ``POST /api/hris/events``) keeps its secret where it always
was (``Hris``' signing keys); it is listed, read, disabled and rotated here like any other, and cannot be deleted.

Activity is kept cheaply: an accepted event is noted at most once a minute per source and process (the quiet
warning counts hours), a refusal at most every ten seconds (with an audit entry saying how many were refused since),
so neither a busy source nor a flood of forged requests costs a storage write each.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from shared.domain.errors import Conflict, Invalid, NotFound, PreconditionFailed
from shared.domain.sources import (
    BUILT_IN_ID,
    BUILT_IN_NAME,
    DEFAULT_MAPPINGS,
    DEFAULT_QUIET_HOURS,
    Credentials,
    HrSource,
    Quiet,
    SourceActivity,
    SourceKind,
    SourceRef,
    check_mapping,
    quiet,
    scim_token,
    token_source,
)
from shared.service.context import Actor, Auditor
from shared.service.health import ComponentHealth
from shared.service.hr.events import (
    Delivery,
    Hris,
    SignatureMismatch,
    SignatureRefused,
    SignatureVerifier,
    SigningKeyStore,
    new_signing_secret,
)
from shared.service.paging import decode_cursor, encode_cursor
from shared.service.ports import Clock, Ids, Page, Uniques
from shared.service.store.uniqueness import Claims

NAME_CLAIM = "hrSourceName"
EVENT_NOTE_SECONDS = 60.0
FAILURE_NOTE_SECONDS = 10.0
REREAD_SECONDS = 1.0


class SourceRefused(Exception):
    """What a source presented does not authenticate it (401), or the source is disabled (403). ``reason`` is for
    the sender and never carries a secret."""

    def __init__(self, reason: str, *, status: Literal[401, 403] = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------------------------------------------- ports
class SourceRepository(Protocol):
    async def add(self, source: HrSource) -> str: ...

    async def get(self, source_id: str) -> tuple[HrSource, str] | None: ...

    async def all(self) -> list[HrSource]: ...

    async def update(self, source: HrSource, etag: str | None) -> str:
        """Write the whole source; with ``etag``, only if unchanged since (``PreconditionFailed`` otherwise)."""

    async def delete(self, source_id: str) -> None: ...

    async def activity(self) -> dict[str, SourceActivity]:
        """Every source's activity, by id."""

    async def note(
        self,
        source_id: str,
        *,
        event_at: dt.datetime | None = None,
        failure_at: dt.datetime | None = None,
        failure: str | None = None,
    ) -> None:
        """Record the last event and/or the last refusal (a merge: one does not erase the other)."""


class SourceSecrets(Protocol):
    async def read(self, source: HrSource, *, fresh: bool = False) -> Credentials | None:
        """The source's credentials (None: none stored yet), from a short in-process cache unless ``fresh``."""

    async def write(self, source: HrSource, credentials: Credentials) -> None: ...

    async def delete(self, source: HrSource) -> None: ...


class SourceRecordsStore(Protocol):
    async def drop(self, source_id: str) -> None:
        """Forget every person and group record of the source (its users and groups stay Warden's)."""


class BambooVerifier(Protocol):
    def __call__(self, key: str, body: bytes, headers: Mapping[str, str], now: dt.datetime) -> dt.datetime:
        """When BambooHR signed the delivery (``X-BambooHR-Timestamp``) if ``key`` signed it within the
        tolerance; else ``SignatureRefused`` (``SignatureMismatch`` when only the signature is wrong)."""


# ---------------------------------------------------------------------------------------------------- views
@dataclass(frozen=True)
class SourceView:
    source: HrSource
    etag: str
    activity: SourceActivity
    quiet: Quiet | None


@dataclass(frozen=True)
class Created:
    view: SourceView
    credential: str | None
    """The SCIM token or Standard Webhooks secret, shown only now (None for BambooHR: its key is BambooHR's)."""


@dataclass(frozen=True)
class Rotated:
    credential: str
    previous_valid_until: dt.datetime | None


@dataclass(frozen=True)
class Authenticated:
    source: HrSource
    delivery: Delivery

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.source.id, self.source.actor)


def new_credential(kind: SourceKind, source_id: str) -> str:
    if kind == "scim":
        return scim_token(source_id, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="))
    return new_signing_secret()


# ------------------------------------------------------------------------------------------------ use case
class Sources:
    def __init__(
        self,
        repo: SourceRepository,
        secrets_store: SourceSecrets,
        records: SourceRecordsStore,
        uniques: Uniques,
        hris: Hris,
        verify_standard: SignatureVerifier,
        verify_bamboohr: BambooVerifier,
        auditor: Auditor,
        clock: Clock,
        ids: Ids,
        *,
        built_in_keys: SigningKeyStore,
        check_mapping: Callable[[str, Mapping[str, str]], None] | None = None,
        real_clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.built_in_keys = built_in_keys
        self.check_paths = check_mapping
        """The HTTP contract's check of a mapping's keys (SCIM attribute paths); ``ValueError`` naming one."""
        self.repo = repo
        self.secrets = secrets_store
        self.records = records
        self.uniques = uniques
        self.hris = hris
        self.verify_standard = verify_standard
        self.verify_bamboohr = verify_bamboohr
        self.auditor = auditor
        self.clock = clock
        self.real_clock = real_clock or clock
        self.ids = ids
        self.monotonic = monotonic
        self.claims = Claims(uniques, self.real_clock, self._holds)
        self._noted: dict[str, float] = {}
        self._refusals: dict[str, tuple[float, int]] = {}
        self._by_id: dict[str, tuple[HrSource, float]] = {}

    async def _holds(self, owner: str, kind: str, value: str) -> bool:
        found = await self.repo.get(owner)
        return found is not None and found[0].name == value

    def _check(self, kind: str, mapping: Mapping[str, str]) -> None:
        try:
            check_mapping(kind, mapping)
            if self.check_paths is not None:
                self.check_paths(kind, mapping)
        except ValueError as exc:
            raise Invalid(str(exc), field="mapping") from None

    # ---------------------------------------------------------------------------------------- reading
    def _built_in_default(self) -> HrSource:
        at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        return HrSource(
            BUILT_IN_ID, BUILT_IN_NAME, "standard", (), "enabled", at, at, DEFAULT_QUIET_HOURS, built_in=True
        )

    async def _load(self, source_id: str) -> tuple[HrSource, str]:
        found = await self.repo.get(source_id)
        if found is not None:
            return found
        if source_id == BUILT_IN_ID:
            return self._built_in_default(), ""
        raise NotFound(f"no HR source with id '{source_id}'")

    async def _view(self, source: HrSource, etag: str, activity: SourceActivity | None = None) -> SourceView:
        if activity is None:
            activity = (await self.repo.activity()).get(source.id, SourceActivity())
        return SourceView(source, etag, activity, quiet(source, activity, self.real_clock()))

    async def get(self, source_id: str) -> SourceView:
        source, etag = await self._load(source_id)
        return await self._view(source, etag)

    async def all(self) -> list[SourceView]:
        stored = await self.repo.all()
        activity = await self.repo.activity()
        if not any(s.id == BUILT_IN_ID for s in stored):
            stored.append(self._built_in_default())
        out = []
        for source in sorted(stored, key=lambda s: s.name):
            out.append(await self._view(source, "", activity.get(source.id, SourceActivity())))
        return out

    async def page(self, cursor: str | None, limit: int) -> Page[SourceView]:
        start = int(decode_cursor("hrsources", cursor) or 0)
        views = await self.all()
        end = start + limit
        return Page(views[start:end], encode_cursor("hrsources", end) if end < len(views) else None)

    # --------------------------------------------------------------------------------------- changing
    async def create(
        self,
        name: str,
        kind: SourceKind,
        mapping: Mapping[str, str] | None,
        quiet_after_hours: int | None,
        actor: Actor,
    ) -> Created:
        fields = dict(DEFAULT_MAPPINGS[kind] if mapping is None else mapping)
        self._check(kind, fields)
        if name == BUILT_IN_NAME:
            raise Conflict(f"name '{name}' is the built-in source's", field="name")
        now = self.clock()
        source = HrSource(
            id=self.ids(),
            name=name,
            kind=kind,
            mapping=tuple(sorted(fields.items())),
            status="enabled",
            created_at=now,
            updated_at=now,
            quiet_after_hours=quiet_after_hours or DEFAULT_QUIET_HOURS,
        )
        credential = None if kind == "bamboohr" else new_credential(kind, source.id)
        if credential is not None:
            source = replace(source, credential_set_at=self.real_clock())
        await self.claims.claim_all({NAME_CLAIM: name}, source.id)
        try:
            if credential is not None:
                await self.secrets.write(source, Credentials(credential))
            etag = await self.repo.add(source)
        except BaseException:
            await self.claims.release_all({NAME_CLAIM: name}, source.id)
            raise
        await self.auditor.record(actor, "hris.source.create", after=_audit_view(source))
        return Created(await self._view(source, etag, SourceActivity()), credential)

    async def update(
        self, source_id: str, changes: Mapping[str, Any], if_match: str | None, actor: Actor
    ) -> SourceView:
        """``changes``: ``mapping``, ``enabled``, ``quiet_after_hours`` (those given)."""
        source, etag = await self._load(source_id)
        if if_match is not None and if_match != etag:
            raise PreconditionFailed(
                "the HR source changed since it was read (If-Match does not match its ETag)"
            )
        after = source
        if "mapping" in changes:
            fields = dict(changes["mapping"])
            self._check(source.kind, fields)
            after = replace(after, mapping=tuple(sorted(fields.items())))
        if "enabled" in changes:
            after = replace(after, status="enabled" if changes["enabled"] else "disabled")
        if "quiet_after_hours" in changes:
            after = replace(after, quiet_after_hours=int(changes["quiet_after_hours"]))
        if after == source:
            return await self._view(source, etag)
        after = replace(after, updated_at=self.clock())
        new_etag = await self.repo.update(after, etag or None)
        self._by_id.pop(source_id, None)
        await self.auditor.record(
            actor, "hris.source.update", before=_audit_view(source), after=_audit_view(after)
        )
        return await self._view(after, new_etag)

    async def delete(self, source_id: str, if_match: str | None, actor: Actor) -> None:
        source, etag = await self._load(source_id)
        if source.built_in:
            raise Conflict("the built-in source cannot be deleted; disable it instead (PATCH enabled: false)")
        if if_match is not None and if_match != etag:
            raise PreconditionFailed(
                "the HR source changed since it was read (If-Match does not match its ETag)"
            )
        await self.secrets.delete(source)
        await self.records.drop(source.id)
        await self.repo.delete(source.id)
        self._by_id.pop(source_id, None)
        await self.claims.release_all({NAME_CLAIM: source.name}, source.id)
        await self.auditor.record(actor, "hris.source.delete", before=_audit_view(source))

    async def rotate(self, source_id: str, actor: Actor) -> Rotated:
        """A new credential, returned once; the one it replaces stays valid for 24 hours."""
        source, etag = await self._load(source_id)
        if source.kind == "bamboohr":
            raise Invalid(
                "BambooHR makes its webhook's private key itself: store the new one with PUT "
                f"/api/hris/sources/{source.id}/secret"
            )
        now = self.real_clock()  # credentials expire on real time
        if source.built_in:
            secret = await self.hris.rotate_secret(actor)
            keys = await self.built_in_keys.read()
            until = keys.previous_until if keys is not None else None
            await self._stamp(source, etag, now, until)
            return Rotated(secret, until)
        current = await self.secrets.read(source, fresh=True)
        new = new_credential(source.kind, source.id)
        creds = current.rotated(new, now) if current is not None else Credentials(new)
        await self.secrets.write(source, creds)
        await self._stamp(source, etag, now, creds.previous_until)
        shown = creds.previous_until.isoformat() if creds.previous_until else None
        await self.auditor.record(
            actor, "hris.source.rotate", after={"source": source.name, "previousValidUntil": shown}
        )
        return Rotated(new, creds.previous_until)

    async def set_secret(self, source_id: str, secret: str, actor: Actor) -> SourceView:
        """Store the private key BambooHR generated for the source's webhook (shown once in BambooHR)."""
        source, etag = await self._load(source_id)
        if source.kind != "bamboohr":
            raise Invalid(
                f"a {source.kind} source's credential is made by Warden: rotate it with POST "
                f"/api/hris/sources/{source.id}/rotate"
            )
        now = self.real_clock()  # credentials expire on real time
        current = await self.secrets.read(source, fresh=True)
        creds = current.rotated(secret, now) if current is not None else Credentials(secret)
        await self.secrets.write(source, creds)
        stamped = await self._stamp(source, etag, now, creds.previous_until)
        until = creds.previous_until.isoformat() if creds.previous_until else None
        await self.auditor.record(
            actor, "hris.source.secret", after={"source": source.name, "previousValidUntil": until}
        )
        return await self._view(*stamped)

    async def _stamp(
        self, source: HrSource, etag: str, at: dt.datetime, until: dt.datetime | None
    ) -> tuple[HrSource, str]:
        stamped = replace(source, credential_set_at=at, previous_valid_until=until, updated_at=at)
        new_etag = await self.repo.update(
            stamped, etag or None
        )  # the built-in, never stored yet: written now
        self._by_id.pop(source.id, None)
        return stamped, new_etag

    # ---------------------------------------------------------------------------------- authenticating
    async def _cached(self, source_id: str) -> HrSource | None:
        """The source, from a cache of a few seconds (a SCIM client or a webhook calls again and again)."""
        hit = self._by_id.get(source_id)
        if hit is not None and self.monotonic() - hit[1] < 5.0:
            return hit[0]
        found = await self.repo.get(source_id)
        if found is None:
            if source_id != BUILT_IN_ID:
                return None
            found = (self._built_in_default(), "")
        self._by_id[source_id] = (found[0], self.monotonic())
        return found[0]

    async def scim_source(self, token: str) -> HrSource:
        """The SCIM source whose token this is (compared in constant time with the current and, within 24 h of a
        rotation, the previous one)."""
        source_id = token_source(token)
        source = await self._cached(source_id) if source_id else None
        if source is None or source.kind != "scim":
            raise SourceRefused("the bearer token is not a token of a Warden SCIM source")
        creds = await self.secrets.read(source)
        if creds is None or not _matches(token, creds, self.real_clock()):
            fresh = await self.secrets.read(source, fresh=True)
            if fresh is None or fresh == creds or not _matches(token, fresh, self.real_clock()):
                await self.refused(source, "a wrong or expired bearer token")
                raise SourceRefused("the bearer token is wrong or was rotated more than 24 hours ago")
        if not source.enabled:
            raise SourceRefused(f"HR source '{source.name}' is disabled", status=403)
        await self.accepted(source)  # a SCIM client calling is a source at work (reads included)
        return source

    async def authenticate(self, source_id: str, body: bytes, headers: Mapping[str, str]) -> Authenticated:
        """A webhook delivery to ``POST /api/hris/sources/{id}/events``, checked with the source's credentials:
        Standard Webhooks for a ``standard`` source, BambooHR's signature for a ``bamboohr`` one."""
        source = await self._cached(source_id)
        if source is None:
            raise NotFound(f"no HR source with id '{source_id}'")
        if source.kind == "scim":
            raise Invalid(
                f"HR source '{source.name}' is a SCIM source: it calls /api/scim/v2, not this webhook"
            )
        if source.built_in:
            try:
                delivery = await self.hris.authenticate(body, headers)
            except SignatureRefused as exc:
                await self.refused(source, exc.reason)
                raise
            return Authenticated(self._enabled(source), delivery)
        creds = await self.secrets.read(source)
        if creds is None:
            creds = await self.secrets.read(source, fresh=True)
        if creds is None:
            reason = "no private key is stored for this source: PUT it to /api/hris/sources/{id}/secret"
            await self.refused(source, reason)
            raise SignatureRefused(reason)
        try:
            try:
                delivery = self._verify(source, creds, body, headers)
            except SignatureMismatch:
                fresh = await self.secrets.read(source, fresh=True)
                if fresh is None or fresh == creds:
                    raise
                delivery = self._verify(source, fresh, body, headers)
        except SignatureRefused as exc:
            await self.refused(source, exc.reason)
            raise
        return Authenticated(self._enabled(source), delivery)

    def _enabled(self, source: HrSource) -> HrSource:
        if not source.enabled:
            raise SourceRefused(f"HR source '{source.name}' is disabled", status=403)
        return source

    def _verify(
        self, source: HrSource, creds: Credentials, body: bytes, headers: Mapping[str, str]
    ) -> Delivery:
        now = self.real_clock()
        mismatch: SignatureMismatch | None = None
        for secret in creds.valid(now):
            try:
                if source.kind == "bamboohr":
                    sent = self.verify_bamboohr(secret, body, headers, now)
                    return Delivery(headers.get("x-bamboohr-signature", "").lower(), sent)
                sent = self.verify_standard(secret, body, headers)
                return Delivery(f"{source.id}:{headers['webhook-id']}", sent)
            except SignatureMismatch as exc:
                mismatch = exc
        assert mismatch is not None
        raise mismatch

    # ------------------------------------------------------------------------------------------ activity
    async def accepted(self, source: HrSource | SourceRef) -> None:
        """Note that the source delivered something Warden accepted (at most once a minute per process)."""
        tick = self.monotonic()
        if tick - self._noted.get(source.id, -1e9) < EVENT_NOTE_SECONDS:
            return
        self._noted[source.id] = tick
        await self.repo.note(source.id, event_at=self.real_clock())

    async def refused(self, source: HrSource, reason: str) -> None:
        """Note a refusal (at most every ten seconds per source and process, with an audit entry counting the
        refusals since the last one): a source whose credential broke shows it in its status and the audit."""
        tick = self.monotonic()
        last, count = self._refusals.get(source.id, (-1e9, 0))
        count += 1
        if tick - last < FAILURE_NOTE_SECONDS:
            self._refusals[source.id] = (last, count)
            return
        self._refusals[source.id] = (tick, 0)
        now = self.real_clock()
        await self.repo.note(source.id, failure_at=now, failure=reason)
        await self.auditor.record(
            Actor(source.actor),
            "hris.source.refused",
            result="failed",
            after={"source": source.name, "reason": reason, "refusals": count},
        )

    async def health(self) -> list[ComponentHealth]:
        """An ``hrSource`` component per source that is expected to send (a credential set, or it has sent):
        ``up`` with its last event and last refusal, or ``warning`` when it has gone quiet."""
        out = []
        for v in await self.all():
            if v.source.credential_set_at is None and v.activity.last_event_at is None:
                continue
            labels = {"source": v.source.name, "kind": v.source.kind}
            for key, at in (
                ("lastEventAt", v.activity.last_event_at),
                ("lastFailureAt", v.activity.last_failure_at),
            ):
                if at is not None:
                    labels[key] = at.isoformat(timespec="seconds").replace("+00:00", "Z")
            detail = None
            if v.quiet is not None:
                detail = (
                    f"nothing accepted for {v.quiet.hours:.0f} h (warns after {v.source.quiet_after_hours} h): "
                    "check the HR system's side of the integration"
                )
            out.append(ComponentHealth("hrSource", "warning" if v.quiet else "up", 0.0, labels, detail))
        return out


def _matches(token: str, creds: Credentials, now: dt.datetime) -> bool:
    presented = token.encode()
    found = False
    for value in creds.valid(now):
        found |= hmac.compare_digest(presented, value.encode())  # every candidate compared, in constant time
    return found


def _audit_view(source: HrSource) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "kind": source.kind,
        "status": source.status,
        "mapping": dict(source.mapping),
        "quietAfterHours": source.quiet_after_hours,
    }
