"""Connected directories on Table Storage: one partition per directory (PartitionKey = directory id).

RowKey ``directory`` is the directory (never its secret: only the Key Vault secret's name);
``group|<groupId>`` records that a group is bound to it, so "the groups bound to D" is a partition query;
``state|<key>`` holds a directory's bookkeeping values (the users deltaLink, the current version of the token
cache, the consent flow under way), never a secret. A directory row carrying ``DeactivatingAt`` is being
deactivated: gone to every reader but the deactivation itself.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.adapters.tables.base import (
    TableStore,
    delete,
    delete_partition,
    from_json,
    from_text,
    from_time,
    insert_new,
    merge,
    prefix_range,
    quote,
    read,
    required_time,
    stream,
    to_json,
    to_text,
    to_time,
)
from shared.domain.model import (
    ConsentedBy,
    Directory,
    DirectoryOptions,
    Domain,
    MassChangeGuard,
    options_document,
)

DIRECTORY = "directory"
GROUP = "group|"
STATE = "state|"
DEACTIVATING = "DeactivatingAt"


def options_from(raw: dict[str, Any]) -> DirectoryOptions:
    guard = raw.get("massChangeGuard") or {}
    return DirectoryOptions(
        create_missing_users=bool(raw.get("createMissingUsers", True)),
        auto_bind_verified_domains=bool(raw.get("autoBindVerifiedDomains", False)),
        password_never_expires=bool(raw.get("passwordNeverExpires", False)),
        mass_change_guard=MassChangeGuard(float(guard.get("percent", 10.0)), int(guard.get("count", 10))),
        attribute_mapping=tuple(sorted((raw.get("attributeMapping") or {}).items())),
        notify_url=(raw.get("notify") or {}).get("url"),
    )


def directory_entity(d: Directory) -> dict[str, Any]:
    return {
        "PartitionKey": d.id,
        "RowKey": DIRECTORY,
        "Name": d.name,
        "TenantId": d.tenant_id,
        "AuthMode": d.auth_mode,
        "ClientId": d.client_id,
        "SecretName": d.secret_name,
        "Domains": to_json(
            [
                {
                    "id": x.id,
                    "isVerified": x.is_verified,
                    "isDefault": x.is_default,
                    "authenticationType": x.authentication_type,
                    "isInitial": x.is_initial,
                    "passwordValidityPeriodInDays": x.password_validity_days,
                }
                for x in d.domains
            ]
        ),
        "Status": d.status,
        "StatusReason": to_text(d.status_reason),
        "Options": to_json(options_document(d.options)),
        "OrganizationName": to_text(d.organization_name),
        "CredentialExpiresAt": to_time(d.credential_expires_at),
        "Credential": d.credential,
        "CertificateThumbprint": to_text(d.certificate_thumbprint),
        "CertificateSha1": to_text(d.certificate_sha1),
        "CredentialKeyId": to_text(d.credential_key_id),
        "ExpirySource": to_text(d.expiry_source),
        "ConsentedBy": to_json(
            {
                "userPrincipalName": d.consented_by.user_principal_name,
                "objectId": d.consented_by.object_id,
                "at": to_time(d.consented_by.at),
            }
        )
        if d.consented_by
        else "",
        "TokenRefreshedAt": to_time(d.token_refreshed_at),
        "CheckedAt": to_time(d.checked_at),
        "StatusCode": to_text(d.status_code),
        "CheckWarnings": to_json(list(d.check_warnings)) if d.check_warnings else "",
        "ExpiryWarned": to_time(d.expiry_warned),
        "CreatedAt": to_time(d.created_at),
        "UpdatedAt": to_time(d.updated_at),
    }


def consented_from(raw: Any) -> ConsentedBy | None:
    data = from_json(raw)
    if not data:
        return None
    return ConsentedBy(str(data["userPrincipalName"]), str(data["objectId"]), required_time(data["at"]))


def directory_from(e: Any) -> Directory:
    return Directory(
        id=e["PartitionKey"],
        name=e["Name"],
        tenant_id=e["TenantId"],
        auth_mode=e["AuthMode"],
        client_id=e["ClientId"],
        secret_name=e["SecretName"],
        domains=tuple(
            Domain(
                x["id"],
                bool(x["isVerified"]),
                bool(x["isDefault"]),
                str(x["authenticationType"]),
                bool(x.get("isInitial", False)),
                x.get("passwordValidityPeriodInDays"),
            )
            for x in from_json(e.get("Domains"), [])
        ),
        status=e["Status"],
        status_reason=from_text(e.get("StatusReason")),
        options=options_from(from_json(e.get("Options"), {})),
        organization_name=from_text(e.get("OrganizationName")),
        credential_expires_at=from_time(e.get("CredentialExpiresAt")),
        credential=e.get("Credential") or "secret",
        certificate_thumbprint=from_text(e.get("CertificateThumbprint")),
        certificate_sha1=from_text(e.get("CertificateSha1")),
        credential_key_id=from_text(e.get("CredentialKeyId")),
        expiry_source=from_text(e.get("ExpirySource")),  # type: ignore[arg-type]
        consented_by=consented_from(e.get("ConsentedBy")),
        token_refreshed_at=from_time(e.get("TokenRefreshedAt")),
        checked_at=from_time(e.get("CheckedAt")),
        status_code=from_text(e.get("StatusCode")),
        check_warnings=tuple(from_json(e.get("CheckWarnings"), [])),
        expiry_warned=from_time(e.get("ExpiryWarned")),
        created_at=required_time(e["CreatedAt"]),
        updated_at=required_time(e["UpdatedAt"]),
    )


RECENT_SECONDS = 30.0
"""How old ``recent``'s list may be: a directory connected, changed or deactivated through another instance counts
within this long (through this one, at once)."""


class TableDirectories:
    def __init__(self, store: TableStore) -> None:
        self.store = store
        self._recent: tuple[float, list[Directory]] | None = None

    async def recent(self) -> list[Directory]:
        """``all()`` as this process read it at most ``RECENT_SECONDS`` ago, unless it wrote a directory since."""
        now = time.monotonic()
        if self._recent is None or now - self._recent[0] >= RECENT_SECONDS:
            self._recent = (now, await self.all())
        return self._recent[1]

    def _changed(self) -> None:
        self._recent = None

    async def add(self, directory: Directory) -> str:
        self._changed()
        return await insert_new(
            await self.store.table("directories"), directory_entity(directory), "directory"
        )

    async def get(self, directory_id: str, *, deactivating: bool = False) -> tuple[Directory, str] | None:
        table = await self.store.table("directories")
        row = await read(table, directory_id, DIRECTORY)
        if row is None or (row.get(DEACTIVATING) and not deactivating):
            return None
        return directory_from(row), str(row.metadata["etag"])

    async def all(self) -> list[Directory]:
        """Every directory but those being deactivated (a handful per organisation: the table holds one row each
        plus group bindings)."""
        table = await self.store.table("directories")
        rows = stream(table, f"RowKey eq {quote(DIRECTORY)}")
        return [directory_from(r) async for r in rows if not r.get(DEACTIVATING)]

    async def mark_deactivating(self, directory_id: str, at: dt.datetime) -> None:
        self._changed()
        table = await self.store.table("directories")
        await merge(
            table, {"PartitionKey": directory_id, "RowKey": DIRECTORY, DEACTIVATING: to_time(at)}, None
        )

    async def update(self, directory: Directory, etag: str | None) -> str:
        self._changed()
        table = await self.store.table("directories")
        return await merge(table, directory_entity(directory), etag)

    async def delete(self, directory_id: str) -> None:
        self._changed()
        await delete_partition(await self.store.table("directories"), directory_id, DIRECTORY)

    async def set_group_binding(self, directory_id: str, group_id: str, bound: bool) -> None:
        table = await self.store.table("directories")
        if bound:
            await table.upsert_entity({"PartitionKey": directory_id, "RowKey": GROUP + group_id})
        else:
            await delete(table, directory_id, GROUP + group_id)

    async def get_state(self, directory_id: str, key: str) -> str | None:
        """A directory's bookkeeping value (e.g. the users deltaLink), never a secret."""
        table = await self.store.table("directories")
        row = await read(table, directory_id, STATE + key)
        return from_text(row.get("Value")) if row is not None else None

    async def set_state(self, directory_id: str, key: str, value: str | None) -> None:
        table = await self.store.table("directories")
        if value is None:
            await delete(table, directory_id, STATE + key)
        else:
            await table.upsert_entity({"PartitionKey": directory_id, "RowKey": STATE + key, "Value": value})

    async def read_state(self, directory_id: str, key: str) -> tuple[str, str] | None:
        """A bookkeeping value with its ETag (for ``swap_state``)."""
        table = await self.store.table("directories")
        row = await read(table, directory_id, STATE + key)
        value = from_text(row.get("Value")) if row is not None else None
        return (value, str(row.metadata["etag"])) if row is not None and value is not None else None

    async def swap_state(self, directory_id: str, key: str, value: str, etag: str | None) -> bool:
        """Write the value if the row is unchanged since ``etag`` was read (None: only if there is no row)."""
        table = await self.store.table("directories")
        entity = {"PartitionKey": directory_id, "RowKey": STATE + key, "Value": value}
        try:
            if etag is None:
                await table.create_entity(entity)
            else:
                await table.update_entity(entity, etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def take_state(self, directory_id: str, key: str, etag: str) -> bool:
        """Empty the value if unchanged since ``etag`` was read: True for the one caller that took it. (An update,
        not a delete: the SDK reports deleting a row that is gone as success, which two takers would both see.)"""
        table = await self.store.table("directories")
        entity = {"PartitionKey": directory_id, "RowKey": STATE + key, "Value": ""}
        try:
            await table.update_entity(entity, etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def bound_groups(self, directory_id: str) -> list[str]:
        table = await self.store.table("directories")
        flt = f"PartitionKey eq {quote(directory_id)} and {prefix_range(GROUP)}"
        return [r["RowKey"][len(GROUP) :] async for r in stream(table, flt, select=["RowKey"])]
