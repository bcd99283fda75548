"""Connected directories on Table Storage: one partition per directory (PartitionKey = directory id).

RowKey ``directory`` is the directory (never its secret: only the Key Vault secret's name);
``group|<groupId>`` records that a group is bound to it, so "the groups bound to D" is a partition query.
"""

from __future__ import annotations

from typing import Any

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
from shared.domain.model import Directory, DirectoryOptions, Domain, MassChangeGuard, options_document

DIRECTORY = "directory"
GROUP = "group|"
STATE = "state|"


def options_from(raw: dict[str, Any]) -> DirectoryOptions:
    guard = raw.get("massChangeGuard") or {}
    return DirectoryOptions(
        create_missing_users=bool(raw.get("createMissingUsers", True)),
        auto_bind_verified_domains=bool(raw.get("autoBindVerifiedDomains", False)),
        password_never_expires=bool(raw.get("passwordNeverExpires", False)),
        mass_change_guard=MassChangeGuard(float(guard.get("percent", 10.0)), int(guard.get("count", 10))),
        attribute_mapping=tuple(sorted((raw.get("attributeMapping") or {}).items())),
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
        "CreatedAt": to_time(d.created_at),
        "UpdatedAt": to_time(d.updated_at),
    }


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
        created_at=required_time(e["CreatedAt"]),
        updated_at=required_time(e["UpdatedAt"]),
    )


class TableDirectories:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def add(self, directory: Directory) -> str:
        return await insert_new(
            await self.store.table("directories"), directory_entity(directory), "directory"
        )

    async def get(self, directory_id: str) -> tuple[Directory, str] | None:
        table = await self.store.table("directories")
        row = await read(table, directory_id, DIRECTORY)
        return (directory_from(row), str(row.metadata["etag"])) if row is not None else None

    async def all(self) -> list[Directory]:
        """Every directory (a handful per organisation: the table holds one row each plus group bindings)."""
        table = await self.store.table("directories")
        return [directory_from(r) async for r in stream(table, f"RowKey eq {quote(DIRECTORY)}")]

    async def update(self, directory: Directory, etag: str | None) -> str:
        table = await self.store.table("directories")
        return await merge(table, directory_entity(directory), etag)

    async def delete(self, directory_id: str) -> None:
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

    async def bound_groups(self, directory_id: str) -> list[str]:
        table = await self.store.table("directories")
        flt = f"PartitionKey eq {quote(directory_id)} and {prefix_range(GROUP)}"
        return [r["RowKey"][len(GROUP) :] async for r in stream(table, flt, select=["RowKey"])]
