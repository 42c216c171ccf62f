"""/api/v1/audit: the audit log (admin only)."""

from __future__ import annotations

from app.api.contract import Call, Limit, Offset, Out, Query, Uuid
from app.models import AuditEntry
from app.store.audit import AuditFilter
from app.vocabulary import AuditAction


class AuditQuery(Query, frozen=True, kw_only=True):
    action: AuditAction | None = None
    user_id: Uuid | None = None
    limit: Limit = 50
    offset: Offset = 0


class AuditPage(Out, frozen=True, kw_only=True):
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


async def list_audit(call: Call[None, AuditQuery]) -> AuditPage:
    q = call.query
    flt = AuditFilter(q.action, q.user_id.lower() if q.user_id else None, q.limit, q.offset)
    items, total = await call.services.audit.find(flt)
    return AuditPage(items=items, total=total, limit=q.limit, offset=q.offset)
