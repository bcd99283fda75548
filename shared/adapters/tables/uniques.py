"""Uniqueness claims on Table Storage: PartitionKey = ``<kind>|<normalised value>``, RowKey ``claim``.

An insert is atomic per key, so of two concurrent claims of one email exactly one succeeds. The claim names
its owner (a user, group or directory id) and when it was made; the use case decides whether a claim whose
owner no longer holds the value is stale (``shared.service.store.uniqueness``).
"""

from __future__ import annotations

import contextlib
import datetime as dt

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.adapters.tables.base import TableStore, etag_of, insert, read, required_time, to_time
from shared.domain.errors import ConcurrentUpdate
from shared.service.ports import Claim

ROW = "claim"


def _key(kind: str, value: str) -> str:
    # '/', '\\', '#', '?' and control characters are not allowed in keys; percent-encode them.
    safe = "".join(c if c.isprintable() and c not in "/\\#?%" else f"%{ord(c):02X}" for c in value)
    return f"{kind}|{safe}"


class TableUniques:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def insert(self, kind: str, value: str, owner: str, at: dt.datetime) -> Claim | None:
        table = await self.store.table("uniques")
        entity = {"PartitionKey": _key(kind, value), "RowKey": ROW, "Owner": owner, "At": to_time(at)}
        for _ in range(3):  # a claim released between our insert and read: insert again
            if await insert(table, entity) is not None:
                return None
            existing = await read(table, entity["PartitionKey"], ROW)
            if existing is not None:
                return Claim(
                    kind, value, str(existing["Owner"]), required_time(existing["At"]), etag_of(existing)
                )
        raise ConcurrentUpdate(f"the {kind} claim keeps changing; try again")

    async def take_over(self, claim: Claim, owner: str, at: dt.datetime) -> bool:
        table = await self.store.table("uniques")
        entity = {
            "PartitionKey": _key(claim.kind, claim.value),
            "RowKey": ROW,
            "Owner": owner,
            "At": to_time(at),
        }
        try:
            await table.update_entity(entity, etag=claim.etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def release(self, kind: str, value: str, owner: str) -> None:
        table = await self.store.table("uniques")
        existing = await read(table, _key(kind, value), ROW)
        if existing is None or existing.get("Owner") != owner:
            return
        with contextlib.suppress(ResourceModifiedError):  # re-claimed by someone else meanwhile: theirs now
            await table.delete_entity(
                _key(kind, value), ROW, etag=etag_of(existing), match_condition=MatchConditions.IfNotModified
            )

    async def owner(self, kind: str, value: str) -> str | None:
        table = await self.store.table("uniques")
        existing = await read(table, _key(kind, value), ROW)
        return str(existing["Owner"]) if existing is not None else None
