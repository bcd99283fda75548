"""HR events: the pure rules (fields, lifecycle state, staleness, usernames), the event model, and the webhook
signing secrets (rotation with a 24-hour overlap, verification, the in-process cache) with an injected clock."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from dataclasses import replace
from typing import Any, cast

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from shared.adapters.webhook_secrets import (
    CACHE_SECONDS,
    KeyVaultSigningKeys,
    decode_keys,
    encode_keys,
    verify_signature,
)
from shared.api import schemas as s
from shared.domain.hr import (
    UNCHANGED,
    Employee,
    HrEvent,
    event_time,
    is_stale,
    lifecycle,
    new_user_fields,
    user_changes,
    username_candidates,
)
from shared.domain.model import AuditEntry, User
from shared.service.context import Auditor
from shared.service.hr.events import (
    NO_SECRET,
    REPROCESS_AFTER,
    SECRET_OVERLAP,
    Accepted,
    Delivery,
    DeliveryInProgress,
    Hris,
    Receipt,
    SignatureMismatch,
    SignatureRefused,
    SigningKeys,
    new_signing_secret,
    rotated,
)

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
BERLIN_START = "2027-01-04"  # local midnight in Berlin = 2027-01-03T23:00Z


def employee(**optional: Any) -> Employee:
    return Employee("E1001", "ada.lovelace@contoso.example", "Ada", "Lovelace", optional=optional)


def user(**fields: Any) -> User:
    base: dict[str, Any] = {
        "id": "u1",
        "username": "ada.lovelace",
        "email": "ada.lovelace@contoso.example",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "display_name": "Ada Lovelace",
        "state": "active",
        "source": "hris:webhook",
        "created_at": T0,
        "updated_at": T0,
        "employee_id": "E1001",
    }
    return User(**{**base, **fields})


# ------------------------------------------------------------------------------------------ lifecycle
def test_a_hire_starting_later_in_berlin_is_staged_until_local_midnight_there() -> None:
    before = dt.datetime(2027, 1, 3, 22, 59, tzinfo=dt.UTC)
    at = dt.datetime(2027, 1, 3, 23, 0, tzinfo=dt.UTC)
    assert lifecycle("employee.hired", None, BERLIN_START, None, "Europe/Berlin", before) == "staged"
    assert lifecycle("employee.hired", None, BERLIN_START, None, "Europe/Berlin", at) == "active"
    assert lifecycle("employee.hired", None, None, None, None, T0) == "active"


def test_a_termination_with_a_future_end_keeps_the_user_until_then_else_suspends() -> None:
    assert lifecycle("employee.terminated", "active", None, "2026-12-31", "UTC", T0) == "active"
    assert lifecycle("employee.terminated", "active", None, "2026-11-01", "UTC", T0) == "suspended"
    assert lifecycle("employee.terminated", "staged", None, None, None, T0) == "suspended"


def test_a_rehire_reactivates_or_stages_until_its_start() -> None:
    assert lifecycle("employee.rehired", "suspended", None, None, None, T0) == "active"
    assert lifecycle("employee.rehired", "suspended", "2027-02-01", None, "UTC", T0) == "staged"


def test_hire_or_update_of_a_known_person_activates_a_due_staged_user_and_never_revives_a_suspended_one() -> (
    None
):
    assert lifecycle("employee.updated", "staged", "2026-11-01", None, "UTC", T0) == "active"
    assert lifecycle("employee.updated", "staged", "2027-01-01", None, "UTC", T0) == "staged"
    assert lifecycle("employee.hired", "suspended", None, None, None, T0) == "suspended"
    assert lifecycle("employee.updated", "active", "2027-01-01", None, "UTC", T0) == "active"


# --------------------------------------------------------------------------------------------- fields
def test_a_new_hire_gets_every_field_a_derived_display_name_and_the_event_time() -> None:
    event = HrEvent(
        "employee.hired", employee(job_title="Analyst", start_at=BERLIN_START, time_zone="Europe/Berlin")
    )
    fields = new_user_fields(event, "ada.lovelace", "m1", T0, T0)
    assert fields["display_name"] == "Ada Lovelace" and fields["job_title"] == "Analyst"
    assert fields["state"] == "staged" and fields["manager_id"] == "m1" and fields["hr_event_at"] == T0
    assert fields["employee_id"] == "E1001" and fields["department"] is None


def test_an_absent_optional_field_is_kept_and_null_clears_it() -> None:
    current = user(job_title="Engineer", department="R&D")
    changes = user_changes(HrEvent("employee.updated", employee(department=None)), current, UNCHANGED, T0)
    assert "job_title" not in changes and changes["department"] is None
    assert "manager_id" not in changes, "no manager named: the manager stays"
    assert user_changes(HrEvent("employee.updated", employee()), current, None, T0)["manager_id"] is None


def test_a_derived_display_name_follows_a_name_change_and_a_chosen_one_stays() -> None:
    renamed = Employee("E1001", "ada.king@contoso.example", "Ada", "King")
    assert (
        user_changes(HrEvent("employee.updated", renamed), user(), UNCHANGED, T0)["display_name"]
        == "Ada King"
    )
    chosen = user(display_name="Countess of Lovelace")
    assert "display_name" not in user_changes(HrEvent("employee.updated", renamed), chosen, UNCHANGED, T0)


def test_a_rehire_clears_the_end_date_unless_it_gives_one() -> None:
    gone = user(state="suspended", end_at="2026-10-01", time_zone="UTC")
    back = user_changes(HrEvent("employee.rehired", employee()), gone, UNCHANGED, T0)
    assert back["end_at"] is None and back["state"] == "active"
    fixed = user_changes(HrEvent("employee.rehired", employee(end_at="2027-06-30")), gone, UNCHANGED, T0)
    assert fixed["end_at"] == "2027-06-30"


def test_a_termination_dated_before_the_start_cancels_the_hire() -> None:
    staged = user(state="staged", start_at="2027-01-04", time_zone="UTC")
    changes = user_changes(
        HrEvent("employee.terminated", employee(end_at="2026-11-01")), staged, UNCHANGED, T0
    )
    assert changes["start_at"] is None and changes["state"] == "suspended"
    later = user_changes(HrEvent("employee.terminated", employee(end_at="2026-12-01")), staged, UNCHANGED, T0)
    assert later["start_at"] is None and later["state"] == "staged", "blocked at its end date"


def test_a_termination_with_a_future_end_stores_it_and_keeps_the_state() -> None:
    changes = user_changes(
        HrEvent("employee.terminated", employee(end_at="2026-12-31T17:00", time_zone="Europe/Berlin")),
        user(),
        UNCHANGED,
        T0,
    )
    assert changes["end_at"] == "2026-12-31T17:00" and changes["state"] == "active"


def test_an_effective_termination_of_an_unknown_person_creates_nobody() -> None:
    with pytest.raises(ValueError):
        new_user_fields(HrEvent("employee.terminated", employee()), "ada", None, T0, T0)


# ---------------------------------------------------------------------------------- ordering, names
def test_an_older_event_is_stale_an_equal_one_is_not() -> None:
    assert is_stale(T0 - dt.timedelta(seconds=1), T0)
    assert not is_stale(T0, T0), "a retry of the event applied halfway must finish"
    assert not is_stale(T0, None)


def test_the_event_time_is_occurred_at_else_the_webhook_timestamp() -> None:
    sent = T0 + dt.timedelta(minutes=3)
    assert event_time(employee(), sent) == sent
    assert event_time(Employee("E1", "a@contoso.example", "A", "B", occurred_at=T0), sent) == T0


def test_username_is_the_lowercased_local_part_then_a_suffix_from_the_employee_id() -> None:
    assert username_candidates("Ada.Lovelace@contoso.example", "E-10 2345") == [
        "ada.lovelace",
        "ada.lovelace.2345",
        "ada.lovelace.e102345",
    ]
    long = username_candidates("a" * 64 + "@contoso.example", "E123456")
    assert all(len(u) <= 64 for u in long) and long[1].endswith(".3456")
    assert username_candidates("ada@contoso.example", "---") == ["ada"]


# ------------------------------------------------------------------------------------------- model
DATA: dict[str, Any] = {
    "employeeId": "E1",
    "email": "ada@contoso.example",
    "firstName": "Ada",
    "lastName": "Lovelace",
}


def bad_fields(type_: str = "employee.hired", **data: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        s.HrisEvent.model_validate({"type": type_, "data": {**DATA, **data}})
    return {".".join(str(p) for p in e["loc"]) for e in caught.value.errors()}


def test_the_event_model_names_each_bad_field() -> None:
    assert bad_fields("employee.promoted") == {"type"}
    no_email = {k: v for k, v in DATA.items() if k != "email"}
    with pytest.raises(ValidationError) as caught:
        s.HrisEvent.model_validate({"type": "employee.hired", "data": no_email})
    assert [".".join(map(str, e["loc"])) for e in caught.value.errors()] == ["data.email"]
    assert bad_fields(salary=1) == {"data.salary"}
    assert bad_fields(timeZone="Mars/Olympus") == {"data.timeZone"}
    assert bad_fields(directories=["nope"]) == {"data.directories.0"}
    assert bad_fields(occurredAt="2026-11-27T09:00:00") == {"data.occurredAt"}, "no offset"
    assert bad_fields(startAt="2027-02-01", endAt="2027-01-01") == {"data"}
    assert s.HrisEvent.model_validate({"type": "employee.hired", "data": DATA}).data.email == DATA["email"]


# ------------------------------------------------------------------------------------- signing keys
def test_a_rotation_keeps_the_previous_secret_for_24_hours_exactly() -> None:
    first = rotated(None, "whsec_one", T0)
    assert first == SigningKeys("whsec_one") and first.valid(T0) == ("whsec_one",)
    second = rotated(first, "whsec_two", T0)
    assert second.previous_until == T0 + SECRET_OVERLAP
    assert second.valid(T0 + SECRET_OVERLAP - dt.timedelta(seconds=1)) == ("whsec_two", "whsec_one")
    assert second.valid(T0 + SECRET_OVERLAP) == ("whsec_two",)
    assert "whsec" not in repr(second)
    assert decode_keys(encode_keys(second)) == second


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_signing_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert secret != new_signing_secret()


class MemoryKeys:
    """``SigningKeyStore`` as another instance sees it: a cached copy (``cached``) and the vault (``stored``)."""

    def __init__(self, keys: SigningKeys | None) -> None:
        self.stored = self.cached = keys
        self.fresh_reads = 0

    async def read(self, *, fresh: bool = False) -> SigningKeys | None:
        if fresh:
            self.fresh_reads += 1
            self.cached = self.stored
        return self.cached

    async def write(self, keys: SigningKeys) -> None:
        self.stored = self.cached = keys


def hris(keys: MemoryKeys, now: list[dt.datetime]) -> Hris:
    none: Any = None
    return Hris(none, none, none, none, none, none, none, keys, verify_signature, none, none, lambda: now[0])


def signed(secret: str, body: bytes = b'{"type":"employee.hired"}', *, age_s: float = 0) -> dict[str, str]:
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", sent, body.decode()),
    }


BODY_BYTES = b'{"type":"employee.hired"}'


async def test_the_previous_secret_verifies_for_24_hours_after_a_rotation_then_not() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    keys = MemoryKeys(rotated(rotated(None, old, T0), new, T0))
    now = [T0 + dt.timedelta(hours=23, minutes=59)]
    service = hris(keys, now)
    assert (await service.authenticate(BODY_BYTES, signed(new))).webhook_id == "msg_1"
    assert (await service.authenticate(BODY_BYTES, signed(old))).webhook_id == "msg_1"
    now[0] = T0 + SECRET_OVERLAP
    with pytest.raises(SignatureMismatch):
        await service.authenticate(BODY_BYTES, signed(old))
    with pytest.raises(SignatureMismatch):
        await service.authenticate(BODY_BYTES, signed(new_signing_secret()))
    assert (await service.authenticate(BODY_BYTES, signed(new))).sent_at <= dt.datetime.now(dt.UTC)


async def test_a_rotation_on_another_instance_counts_at_once() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    keys = MemoryKeys(SigningKeys(old))
    keys.stored = SigningKeys(
        new, old, T0 + SECRET_OVERLAP
    )  # written elsewhere; this cache still has the old
    service = hris(keys, [T0])
    assert (await service.authenticate(BODY_BYTES, signed(new))).webhook_id == "msg_1"
    assert keys.fresh_reads == 1


async def test_refusals_say_why_and_only_a_wrong_signature_rereads_the_vault() -> None:
    secret = new_signing_secret()
    keys = MemoryKeys(SigningKeys(secret))
    service = hris(keys, [T0])
    cases = {
        "headers are required": {},
        "more than 5 minutes old": signed(secret, age_s=6 * 60),
        "in the future": signed(secret, age_s=-6 * 60),
        "Unix seconds": {**signed(secret), "webhook-timestamp": "yesterday"},
    }
    for reason, headers in cases.items():
        with pytest.raises(SignatureRefused) as caught:
            await service.authenticate(BODY_BYTES, headers)
        assert reason in caught.value.reason and not isinstance(caught.value, SignatureMismatch)
    assert keys.fresh_reads == 0
    for garbage in ("v1,???", "garbage", "v1,a,b", "v2,AAAA"):
        with pytest.raises(SignatureMismatch):
            await service.authenticate(BODY_BYTES, {**signed(secret), "webhook-signature": garbage})
    with pytest.raises(SignatureMismatch):
        await service.authenticate(BODY_BYTES + b" ", signed(secret))
    with pytest.raises(SignatureRefused) as caught:
        await hris(MemoryKeys(None), [T0]).authenticate(BODY_BYTES, signed(secret))
    assert caught.value.reason == NO_SECRET


# ---------------------------------------------------------------------------------- the vault cache
class FakeSecret:
    def __init__(self, value: str) -> None:
        self.value = value


class FakeSecretClient:
    """Key Vault's ``SecretClient`` surface that the cache uses, counting reads."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads = 0

    async def get_secret(self, name: str) -> FakeSecret:
        from azure.core.exceptions import ResourceNotFoundError

        self.reads += 1
        if name not in self.values:
            raise ResourceNotFoundError("SecretNotFound")
        return FakeSecret(self.values[name])

    async def set_secret(self, name: str, value: str, **kw: Any) -> None:
        assert json.loads(value)["current"].startswith("whsec_")
        self.values[name] = value


async def test_the_vault_is_read_at_most_every_60_seconds_and_a_forced_read_at_most_every_second() -> None:
    client = FakeSecretClient()
    clock = [100.0]
    store = KeyVaultSigningKeys(client, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    assert await store.read() is None and client.reads == 1, "no secret yet"
    client.values[store.name] = encode_keys(SigningKeys("whsec_AAAA"))
    assert await store.read() is None and client.reads == 1, "cached"
    clock[0] += 0.5
    assert await store.read(fresh=True) is None and client.reads == 1, "a forced read waits a second"
    clock[0] += 1
    assert await store.read(fresh=True) == SigningKeys("whsec_AAAA") and client.reads == 2
    clock[0] += CACHE_SECONDS - 1
    assert await store.read() == SigningKeys("whsec_AAAA") and client.reads == 2
    clock[0] += 1
    await store.read()
    assert client.reads == 3, "read again after 60 s"
    await store.write(SigningKeys("whsec_BBBB", "whsec_AAAA", T0))
    assert await store.read() == SigningKeys("whsec_BBBB", "whsec_AAAA", T0) and client.reads == 3


# ------------------------------------------------------------------------------------------ receipts
class MemoryReceipts:
    def __init__(self) -> None:
        self.rows: dict[str, Receipt] = {}
        self.released: list[str] = []

    async def insert(self, receipt: Receipt) -> Receipt | None:
        if receipt.webhook_id in self.rows:
            return self.rows[receipt.webhook_id]
        self.rows[receipt.webhook_id] = replace(receipt, etag="1")
        return None

    async def take_over(self, receipt: Receipt, at: dt.datetime) -> bool:
        current = self.rows.get(receipt.webhook_id)
        if current is None or current.etag != receipt.etag:
            return False
        self.rows[receipt.webhook_id] = replace(current, at=at, etag=current.etag + "+")
        return True

    async def finish(self, webhook_id: str, outcome: Any, user_id: str | None, at: dt.datetime) -> None:
        self.rows[webhook_id] = replace(self.rows[webhook_id], state="done", outcome=outcome, user_id=user_id)

    async def release(self, webhook_id: str) -> None:
        self.released.append(webhook_id)
        self.rows.pop(webhook_id, None)


class MemoryAudit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


class BrokenStore:
    """The first store read of an event fails, as a storage outage would."""

    async def get(self, key: str) -> None:
        raise ConnectionError("storage unreachable")

    async def owner(self, kind: str, value: str) -> None:
        raise ConnectionError("storage unreachable")

    async def all(self) -> None:
        raise ConnectionError("storage unreachable")

    async def recent(self) -> None:
        raise ConnectionError("storage unreachable")


def accepting(receipts: MemoryReceipts, audit: MemoryAudit, now: list[dt.datetime]) -> Hris:
    none: Any = None
    log: Any = audit
    auditor = Auditor(log, lambda: now[0], lambda: "a1")
    broken: Any = BrokenStore()
    return Hris(none, none, broken, none, broken, broken, receipts, none, none, none, auditor, lambda: now[0])


EVENT = HrEvent("employee.hired", Employee("E1", "a@contoso.example", "A", "B", directories=("d1",)))
DELIVERY = Delivery("msg_1", T0)


async def test_a_done_receipt_makes_a_repeated_delivery_a_no_op_answered_duplicate() -> None:
    receipts, audit = MemoryReceipts(), MemoryAudit()
    receipts.rows["msg_1"] = Receipt("msg_1", "employee.hired", "E1", "done", T0, "1", "accepted", "u1")
    result = await accepting(receipts, audit, [T0]).accept(EVENT, DELIVERY, "c1")
    assert result == Accepted("duplicate", "u1")
    assert [(e.action, e.actor, e.user_id) for e in audit.entries] == [
        ("hris.event.duplicate", "hris:webhook", "u1")
    ]


async def test_a_delivery_in_flight_is_409_until_it_looks_crashed_then_it_is_processed_again() -> None:
    receipts, audit = MemoryReceipts(), MemoryAudit()
    receipts.rows["msg_1"] = Receipt("msg_1", "employee.hired", "E1", "received", T0, "1")
    now = [T0 + REPROCESS_AFTER - dt.timedelta(seconds=1)]
    with pytest.raises(DeliveryInProgress):
        await accepting(receipts, audit, now).accept(EVENT, DELIVERY, "c1")
    assert receipts.rows["msg_1"].etag == "1", "untouched"
    now[0] = T0 + REPROCESS_AFTER
    with pytest.raises(ConnectionError):  # taken over and processed: the store read fails here
        await accepting(receipts, audit, now).accept(EVENT, DELIVERY, "c1")
    assert receipts.released == ["msg_1"]


async def test_a_failed_processing_releases_its_receipt_so_the_retry_processes_the_event() -> None:
    receipts, audit = MemoryReceipts(), MemoryAudit()
    with pytest.raises(ConnectionError):
        await accepting(receipts, audit, [T0]).accept(EVENT, DELIVERY, "c1")
    assert receipts.rows == {} and receipts.released == ["msg_1"] and audit.entries == []


async def test_the_persons_read_goes_out_beside_the_receipts_insert() -> None:
    """One round trip fewer before the 202: the receipt's insert is still unanswered when the person is looked
    up (sequential, this insert would wait for a lookup that never started, and time out)."""
    looked_up = asyncio.Event()

    class WatchedStore(BrokenStore):
        async def owner(self, kind: str, value: str) -> None:
            looked_up.set()
            await super().owner(kind, value)

    class SlowReceipts(MemoryReceipts):
        async def insert(self, receipt: Receipt) -> Receipt | None:
            async with asyncio.timeout(5):
                await looked_up.wait()
            return await super().insert(receipt)

    receipts, audit = SlowReceipts(), MemoryAudit()
    none: Any = None
    watched: Any = WatchedStore()
    auditor = Auditor(cast(Any, audit), lambda: T0, lambda: "a1")
    hris = Hris(none, none, watched, none, watched, watched, receipts, none, none, none, auditor, lambda: T0)
    with pytest.raises(ConnectionError):  # the read's failure is the event's, after the insert: released
        await hris.accept(EVENT, DELIVERY, "c1")
    assert receipts.released == ["msg_1"]
