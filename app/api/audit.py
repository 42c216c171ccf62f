"""/api/v1/audit: the audit log (admin only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import admin, page, services
from app.api.schema import UUID_PATTERN, Field, Query, limit_offset
from app.store.audit import AuditFilter

LIST = Query(
    {
        "action": Field(
            str,
            required=False,
            pattern=r"^[a-z_.]{1,64}$",
            description="such as auth.login, command.submit, vehicle.update",
        ),
        "user_id": Field(str, required=False, pattern=UUID_PATTERN),
        **limit_offset(),
    }
)


async def list_audit(request: Request) -> Response:
    await admin(request)
    q = LIST.parse(request)
    flt = AuditFilter(
        q.get("action"),
        q["user_id"].lower() if "user_id" in q else None,
        q.get("limit", 50),
        q.get("offset", 0),
    )
    items, total = await services(request).audit.find(flt)
    return page(items, total, flt.limit, flt.offset)
