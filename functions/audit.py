"""The door of the operation tagged ``audit``: the audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import audit_out
from shared.service.ports import AuditQuery

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def list_audit(app: Container, call: Call[None, s.AuditQueryIn]) -> Result:
    q: s.AuditQueryIn = call.query
    page = await app.stores.audit.page(
        AuditQuery(q.userId, q.directoryId, q.since, q.correlationId), q.cursor, q.limit
    )
    return Result(200, s.AuditList(items=[audit_out(e) for e in page.items], next=page.next))
