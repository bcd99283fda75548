"""Entra tenants' OpenID configurations on Table Storage, shared by every process and instance of Warden
(``shared.adapters.identity.DiscoveryDocuments``).

One partition (``openid``), RowKey = SHA-256 of the document's URL (hex: a URL's ``/`` is not a valid key), the URL
itself, the document as fetched and when (epoch seconds) as properties. Public documents only: the identity adapter
stores nothing else here (never a token, a secret or a response to a POST).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from shared.adapters.tables.base import TableStore, quote, transact

TABLE = "discovery"
PARTITION = "openid"


def document_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


class TableDiscoveryDocuments:
    """``DiscoveryStore``: every stored document in one query; new ones upserted in transactions of 100."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    async def load(self, limit: int) -> list[tuple[str, str, float]]:
        """(url, document, fetched at) of at most ``limit`` rows."""
        table = await self.store.table(TABLE)
        found: list[tuple[str, str, float]] = []
        async for e in table.query_entities(
            f"PartitionKey eq {quote(PARTITION)}",
            results_per_page=1000,
            select=["Url", "Document", "FetchedAt"],
        ):
            found.append((str(e.get("Url", "")), str(e.get("Document", "")), _seconds(e.get("FetchedAt"))))
            if len(found) >= limit:
                break
        return found

    async def save(self, documents: Sequence[tuple[str, str, float]], gone: Sequence[str] = ()) -> None:
        """Upsert ``documents`` (url, document, fetched at) and delete the rows of the URLs ``gone``."""
        table = await self.store.table(TABLE)
        kept = {url for url, _, _ in documents}
        operations: list[tuple[Any, ...]] = [
            (
                "upsert",
                {
                    "PartitionKey": PARTITION,
                    "RowKey": document_key(url),
                    "Url": url,
                    "Document": document,
                    "FetchedAt": float(fetched_at),
                },
            )
            for url, document, fetched_at in documents
        ]
        operations += [
            ("delete", {"PartitionKey": PARTITION, "RowKey": document_key(url)})
            for url in dict.fromkeys(gone)
            if url not in kept
        ]
        if operations:
            await transact(table, operations)


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
