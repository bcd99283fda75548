"""The tenant's own settings as use cases, against an in-memory tenant: a federation that fails half-way is undone
whichever step fails, and never POSTed without its certificate; the password policy remembers before it writes and
is put back when Graph refuses part of it; the refresh round moves a directory in and out of rule 17's block; the
mass-change guard counts no block of a protected account."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from shared.domain.errors import BadInput, Conflict, Invalid, Upstream
from shared.domain.federation import (
    Certificate,
    DomainAccount,
    Federation,
    FederationSettings,
    IdpMetadata,
    TenantDomain,
)
from shared.domain.model import (
    Directory,
    DirectoryOptions,
    Domain,
    Link,
    MassChangeGuard,
    User,
    UserDirectory,
)
from shared.domain.planner import Desired, M365Account, Observation, Target, plan_user
from shared.domain.protection import ProtectedAccount, Protection, RoleGrant, RoleHolders
from shared.domain.runs import guard_verdict
from shared.service.context import Actor, Auditor
from shared.service.ports import Applied, IndexEntry, RolesRead, Written
from shared.service.tenant.federation import FederationRequest, Federations
from shared.service.tenant.password_policy import PasswordPolicy
from shared.service.tenant.protection import Protections
from shared.service.tenant.settings import TenantSettings

NOW = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
ACTOR = Actor("admin:oid-1", "c-1")
SSO = "sso.example"
U1 = str(uuid.UUID(int=1))
CERT = Certificate("Y2VydA==", "CN=idp", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=300), "AB" * 20)


class FakeTenant:
    """A tenant as Graph shows it, with Graph's rule that creating a federation makes the domain Federated; ``fail``
    names operations (``create``, ``domains@2``: the second read of domains, …) that fail."""

    def __init__(self) -> None:
        self.domains_: dict[str, TenantDomain] = {
            "corp.example": TenantDomain("corp.example", True, True, False, "Managed", 90),
            "admins.example": TenantDomain("admins.example", True, False, False, "Managed", 90),
            SSO: TenantDomain(SSO, True, False, False, "Managed", 90),
            "t.onmicrosoft.com": TenantDomain("t.onmicrosoft.com", True, False, True, "Managed", 90),
            "fed.example": TenantDomain("fed.example", True, False, False, "Federated", 90),
        }
        self.federations: dict[str, Federation] = {}
        self.on_prem: bool | None = None
        self.holders: RoleHolders | None = RoleHolders(
            {"ga-1": (RoleGrant("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),)},
            frozenset({"ga-1"}),
            {"ga-1": "root@admins.example"},
        )
        self.accounts_: dict[str, DomainAccount] = {
            "ga-1": DomainAccount("ga-1", "root@admins.example", None, True),
            "m-1": DomainAccount("m-1", f"ada@{SSO}", "AAAA", True),
        }
        self.fail: set[str] = set()
        self.calls: list[str] = []
        self.counts: dict[str, int] = {}

    def _hit(self, name: str) -> bool:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.calls.append(name)
        return name in self.fail or f"{name}@{self.counts[name]}" in self.fail

    async def on_premises_sync(self, directory: Directory) -> bool | None:
        return self.on_prem

    async def domains(self, directory: Directory) -> list[TenantDomain]:
        if self._hit("domains"):
            raise Upstream("Graph answered GET /domains with HTTP 500")
        return list(self.domains_.values())

    async def federation(self, directory: Directory, domain: str) -> Federation | None:
        return self.federations.get(domain)

    async def create_federation(
        self, directory: Directory, domain: str, settings: FederationSettings
    ) -> Written:
        assert settings.signing_certificate, "never POSTed without its signing certificate"
        if self._hit("create"):
            return Written("retry", "HTTP 500 generalException", 1)
        self.federations[domain] = Federation("f-1", settings, CERT)
        self.domains_[domain] = dataclasses.replace(self.domains_[domain], authentication_type="Federated")
        return Written("applied", None, 1, "f-1")

    async def update_federation(
        self, directory: Directory, domain: str, federation_id: str, settings: FederationSettings
    ) -> Written:
        if self._hit("update"):
            return Written("failed", "HTTP 400 Request_BadRequest", 1)
        self.federations[domain] = Federation(federation_id, settings, CERT)
        return Written("applied", None, 1)

    async def delete_federation(self, directory: Directory, domain: str, federation_id: str) -> Written:
        self._hit("delete")
        self.federations.pop(domain, None)
        self.domains_[domain] = dataclasses.replace(self.domains_[domain], authentication_type="Managed")
        return Written("applied", None, 1)

    async def set_authentication(self, directory: Directory, domain: str, kind: str) -> Written:
        if self._hit(f"auth:{kind}"):
            return Written("failed", "HTTP 400", 1)
        self.domains_[domain] = dataclasses.replace(self.domains_[domain], authentication_type=kind)
        return Written("applied", None, 1)

    async def set_password_validity(self, directory: Directory, domain: str, days: int) -> Written:
        if self._hit(f"password:{domain}"):
            return Written("failed", "HTTP 403 Authorization_RequestDenied", 1)
        self.domains_[domain] = dataclasses.replace(self.domains_[domain], password_validity_days=days)
        return Written("applied", None, 1)

    async def domain_accounts(self, directory: Directory, domain: str) -> list[DomainAccount]:
        return [a for a in self.accounts_.values() if a.domain == domain]

    async def accounts(self, directory: Directory, ids: Sequence[str]) -> list[DomainAccount]:
        return [self.accounts_[i] for i in ids if i in self.accounts_]

    async def role_holders(self, directory: Directory) -> RoleHolders | None:
        return self.holders


class Store:
    """The directory row, the index, the protected accounts and the settings Warden keeps, in memory."""

    def __init__(self, directory: Directory) -> None:
        self.directory, self.version = directory, 1
        self.federations_: dict[str, FederationSettings] = {}
        self.previous: dict[str, int] = {}
        self.protected: dict[str, ProtectedAccount] = {}
        self.read: RolesRead | None = None
        self.audit: list[tuple[str, str]] = []
        self.queued: list[str] = []

    # DirectoryRepository
    async def get(self, directory_id: str) -> tuple[Directory, str] | None:
        return (self.directory, str(self.version)) if directory_id == self.directory.id else None

    async def all(self, directory_id: str | None = None) -> Any:
        if directory_id is None:
            return [self.directory]
        return dict(self.protected)

    async def update(self, directory: Directory, etag: str | None) -> str:
        self.directory, self.version = directory, self.version + 1
        return str(self.version)

    # DirectoryIndex
    async def _entries(self) -> AsyncIterator[IndexEntry]:
        yield IndexEntry(
            self.directory.id,
            U1,
            ("direct",),
            "synced",
            "m-1",
            None,
            Link(U1, "d-1", m365_user_id="m-1"),
        )

    def index_all(self, directory_id: str) -> AsyncIterator[IndexEntry]:
        return self._entries()

    # ManagedSettingsStore
    async def federations(self, directory_id: str) -> dict[str, FederationSettings]:
        return dict(self.federations_)

    async def save_federation(self, directory_id: str, domain: str, settings: FederationSettings) -> None:
        self.federations_[domain] = settings

    async def drop_federation(self, directory_id: str, domain: str) -> None:
        self.federations_.pop(domain, None)

    async def password_previous(self, directory_id: str) -> dict[str, int]:
        return dict(self.previous)

    async def remember_password(self, directory_id: str, domain: str, days: int) -> None:
        self.previous[domain] = days

    async def forget_password(self, directory_id: str, domain: str) -> None:
        self.previous.pop(domain, None)

    # ProtectedAccounts
    async def lookup(self, directory_id: str, ids: Sequence[str]) -> Protection:
        return Protection(
            {i: r.why for i, r in self.protected.items() if i in ids}, bool(self.read and self.read.readable)
        )

    async def put(self, rows: Sequence[ProtectedAccount]) -> None:
        self.protected.update({r.m365_user_id: r for r in rows})

    async def drop(self, directory_id: str, ids: Sequence[str]) -> None:
        for i in ids:
            self.protected.pop(i, None)

    async def roles_read(self, directory_id: str) -> RolesRead | None:
        return self.read

    async def set_roles_read(self, directory_id: str, read: RolesRead) -> None:
        self.read = read

    # AuditLog, Uniques, SyncQueue
    async def record(self, entry: Any) -> None:
        self.audit.append((entry.action, entry.result))

    async def owner(self, kind: str, value: str) -> str | None:
        return U1 if value == "m-1" else None

    async def enqueue(self, user_ids: Sequence[str], correlation_id: str | None, **kw: Any) -> None:
        self.queued.extend(user_ids)


class Index:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self, directory_id: str) -> AsyncIterator[IndexEntry]:
        return self.store.index_all(directory_id)


class M365:
    def __init__(self) -> None:
        self.applied: list[Any] = []

    async def apply(self, directory: Directory, items: Sequence[Any], password: Any) -> list[Applied]:
        self.applied.extend(items)
        return [Applied(i, "applied", i.m365_user_id) for i in items]


def directory(**options: Any) -> Directory:
    return Directory(
        id="d-1",
        name="Contoso",
        tenant_id=str(uuid.uuid4()),
        auth_mode="app",
        client_id=str(uuid.uuid4()),
        secret_name="s",
        domains=(
            Domain("corp.example", True, True, "Managed", False, 90),
            Domain(SSO, True, False, "Managed"),
        ),
        status="active",
        options=DirectoryOptions(**options),
        created_at=NOW,
        updated_at=NOW,
    )


def metadata(xml: str) -> IdpMetadata:
    return IdpMetadata("https://idp.example/saml2/sso", "https://idp.example/sso", None, (CERT,))


def world(**options: Any) -> tuple[FakeTenant, Store, TenantSettings, Federations]:
    tenant, store = FakeTenant(), Store(directory(**options))
    auditor = Auditor(store, lambda: NOW, lambda: str(uuid.uuid4()))  # type: ignore[arg-type]
    protections = Protections(store, store, tenant, store, store, auditor, lambda: NOW)  # type: ignore[arg-type]
    federations = Federations(
        store,
        Index(store),
        tenant,
        M365(),
        store,
        store,
        metadata,
        auditor,
        lambda: NOW,  # type: ignore[arg-type]
    )
    passwords = PasswordPolicy(tenant, store, auditor)  # type: ignore[arg-type]
    settings = TenantSettings(store, tenant, protections, passwords, federations, auditor, lambda: NOW)  # type: ignore[arg-type]
    return tenant, store, settings, federations


REAL = FederationRequest("<xml/>", confirm=SSO)


async def test_a_federation_is_created_read_back_and_remembered_as_wardens() -> None:
    tenant, store, _, federations = world()
    view = await federations.put("d-1", SSO, REAL, ACTOR)
    assert view.domain.federated and view.managed_by_warden and SSO in store.federations_
    assert tenant.calls.count("create") == 1 and "delete" not in tenant.calls


@pytest.mark.parametrize(
    ("fail", "step"),
    [
        ({"create"}, "reading the federation back"),  # no answer, and nothing made: undone (nothing to undo)
        ({"domains@2"}, "reading the federation back"),  # made, then reading it back fails
    ],
)
async def test_a_failure_half_way_is_undone_and_nothing_remembered(fail: set[str], step: str) -> None:
    tenant, store, _, federations = world()
    tenant.fail = fail
    with pytest.raises(Upstream) as raised:
        await federations.put("d-1", SSO, REAL, ACTOR)
    assert f"while {step}" in raised.value.detail and raised.value.extensions["undone"] is True
    assert SSO not in tenant.federations and tenant.domains_[SSO].authentication_type == "Managed"
    assert store.federations_ == {}, "a failed federation is never Warden's to restore"
    assert any(a == "federation.set" and r.startswith("failed") for a, r in store.audit)


async def test_a_domain_graph_leaves_managed_is_set_federated_and_undone_when_that_fails() -> None:
    tenant, store, _, federations = world()
    original = tenant.create_federation

    async def create_without_type(d: Directory, domain: str, settings: FederationSettings) -> Written:
        written = await original(d, domain, settings)
        tenant.domains_[domain] = dataclasses.replace(tenant.domains_[domain], authentication_type="Managed")
        return written

    tenant.create_federation = create_without_type  # type: ignore[method-assign]
    await federations.put("d-1", SSO, REAL, ACTOR)
    assert tenant.domains_[SSO].federated and "auth:Federated" in tenant.calls
    tenant.federations.clear()
    tenant.domains_[SSO] = dataclasses.replace(tenant.domains_[SSO], authentication_type="Managed")
    store.federations_.clear()
    tenant.fail = {"auth:Federated"}
    with pytest.raises(Upstream, match="setting the domain Federated"):
        await federations.put("d-1", SSO, REAL, ACTOR)
    assert SSO not in tenant.federations and not tenant.domains_[SSO].federated


async def test_a_failed_update_puts_the_previous_federation_back() -> None:
    tenant, _, _, federations = world()
    await federations.put("d-1", SSO, REAL, ACTOR)
    before = tenant.federations[SSO].settings
    tenant.fail = {"update@1"}
    rolled = FederationRequest("<xml/>", confirm=SSO, mfa_behavior="enforceMfaByFederatedIdp")
    with pytest.raises(Upstream, match="undone: the previous federation is in place"):
        await federations.put("d-1", SSO, rolled, ACTOR)
    assert tenant.federations[SSO].settings == before


async def test_confirmation_and_checks_come_before_any_write() -> None:
    tenant, _, _, federations = world()
    with pytest.raises(BadInput):
        await federations.put("d-1", SSO, FederationRequest("<xml/>"), ACTOR)
    with pytest.raises(Invalid):
        await federations.put("d-1", SSO, FederationRequest("<xml/>", confirm="corp.example"), ACTOR)
    with pytest.raises(Conflict) as refused:
        await federations.put(
            "d-1", "corp.example", FederationRequest("<xml/>", confirm="corp.example"), ACTOR
        )
    assert [c["id"] for c in refused.value.extensions["checks"] if c["verdict"] == "fail"] == ["not-default"]
    assert not any(c in tenant.calls for c in ("create", "update", "delete"))


async def test_removing_forgets_first_then_returns_the_domain_to_managed() -> None:
    tenant, store, _, federations = world()
    await federations.put("d-1", SSO, REAL, ACTOR)
    removed = await federations.remove("d-1", SSO, SSO, ACTOR)
    assert not removed.domain.federated and [n.user_id for n in removed.need_password] == [U1]
    assert store.federations_ == {} and SSO not in tenant.federations


async def test_the_password_policy_remembers_before_writing_and_a_refusal_puts_everything_back() -> None:
    tenant, store, settings, _ = world()
    before = store.directory
    after = dataclasses.replace(before, options=DirectoryOptions(password_never_expires=True))
    tenant.fail = {"password:t.onmicrosoft.com"}
    with pytest.raises(Upstream, match="could not be applied"):
        await settings.options_changing(before, after, ACTOR)
    assert {d.name: d.password_validity_days for d in tenant.domains_.values()} == {
        "corp.example": 90,
        "admins.example": 90,
        SSO: 90,
        "t.onmicrosoft.com": 90,
        "fed.example": 90,
    }
    assert store.previous == {}, "everything put back, nothing left remembered"
    tenant.fail = set()
    stored = await settings.options_changing(before, after, ACTOR)
    shown = {d.name: d.password_validity_days for d in stored.domains}
    assert shown == {"corp.example": 2147483647, SSO: 2147483647}, "the directory shows each domain's policy"
    assert tenant.domains_["fed.example"].password_validity_days == 90
    assert {n for n, d in tenant.domains_.items() if d.password_validity_days == 2147483647} == {
        "corp.example",
        "admins.example",
        SSO,
        "t.onmicrosoft.com",
    }


async def test_the_refresh_round_blocks_and_releases_a_directory_and_reads_role_holders() -> None:
    tenant, store, settings, _ = world()
    tenant.on_prem = True
    refreshed = await settings.refresh("d-1", ACTOR)
    assert refreshed is not None and (refreshed.status, refreshed.writable) == ("blocked", False)
    assert store.protected["ga-1"].why == ("Global Administrator",) and store.read and store.read.readable
    tenant.on_prem = False
    again = await settings.refresh("d-1", ACTOR)
    assert again is not None and again.status == "active"
    tenant.holders = None
    await settings.refresh("d-1", ACTOR)
    assert store.read is not None and not store.read.readable
    assert "RoleManagement.Read.Directory" in (await settings.warnings(store.directory))[0]


def test_the_mass_change_guard_counts_no_block_of_a_protected_account() -> None:
    target = {"d-1": Target("d-1", frozenset({"contoso.example"}), True)}
    counts: dict[str, int] = {}
    for n in range(20):
        uid = str(uuid.UUID(int=n + 1))
        user = User(uid, f"u{n}", f"u{n}@contoso.example", "A", "B", "A B", "suspended", "admin", NOW, NOW)
        account = M365Account(
            f"m-{n}", user.email, True, protected_by=("Global Administrator",) if n < 15 else ()
        )
        link = Link(uid, "d-1", status="synced", m365_user_id=account.id)
        (item,) = plan_user(
            Desired(user, (UserDirectory("d-1", ("direct",), link),)),
            target,
            {"d-1": Observation(linked=account)},
        )
        counts[item.action] = counts.get(item.action, 0) + 1
    assert counts == {"needs_attention": 15, "block": 5}
    assert guard_verdict(counts, 20, MassChangeGuard(10.0, 4)) is not None, (
        "the five blocks are over this guard"
    )
    assert guard_verdict(counts, 20, MassChangeGuard(10.0, 5)) is None, (
        "the fifteen frozen accounts count nothing"
    )
