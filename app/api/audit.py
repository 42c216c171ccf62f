"""/api/v1/audit: the audit log (admin only)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from app.api.contract import Call, Limit, Offset, Out, Query, Uuid
from app.errors import BadRequest
from app.models import AuditEntry
from app.store.audit import AuditFilter
from app.vocabulary import AuditAction

KNOWN_ACTIONS: Final = ", ".join(a.value for a in AuditAction)


class AuditQuery(Query, frozen=True, kw_only=True):
    # A string checked in the handler, so a wrong one is answered with the list.
    action: (
        Annotated[
            str,
            msgspec.Meta(
                description="an audit action",
                extra_json_schema={"enum": sorted(a.value for a in AuditAction)},
            ),
        ]
        | None
    ) = None
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
    action = _action(q.action)
    flt = AuditFilter(action, q.user_id.lower() if q.user_id else None, q.limit, q.offset)
    items, total = await call.services.audit.find(flt)
    return AuditPage(items=items, total=total, limit=q.limit, offset=q.offset)


def _action(raw: str | None) -> AuditAction | None:
    if raw is None:
        return None
    try:
        return AuditAction(raw)
    except ValueError:
        raise BadRequest(
            f"query parameter action: {raw[:64]!r} is not an audit action (known: {KNOWN_ACTIONS})"
        ) from None
