"""Reading the audit log (writes happen in the transaction of each change)."""

from __future__ import annotations

from app.models import AuditEntry
from app.store.audit import AuditFilter, AuditStore


class AuditService:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def find(self, flt: AuditFilter) -> tuple[list[AuditEntry], int]:
        return await self._store.find(flt)
