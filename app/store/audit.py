"""The audit log: who changed what, when, and from where."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.models import Actor, AuditEntry
from app.store.engine import Engine
from app.store.rows import Where, delete_batch, enum_reader, page
from app.store.sql import Conn, Row, insert_later
from app.vocabulary import AuditAction


def insert_audit(
    conn: Conn,
    actor: Actor,
    action: AuditAction,
    at: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit row; called inside the transaction of the change it records
    (which reads nothing of it: ``insert_later``)."""
    insert_later(
        conn,
        "INSERT INTO audit_log (at, user_id, username, action, entity_type, entity_id,"
        " details, client_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            actor.user_id,
            actor.username,
            action,
            entity_type,
            entity_id,
            json.dumps(details or {}, separators=(",", ":")),
            actor.client_address,
        ),
    )


_ACTION = enum_reader(AuditAction)
_ENTRY_COLUMNS = (
    "audit_id, at, user_id, username, action, entity_type, entity_id, details, client_address"
)


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(
        audit_id=row["audit_id"],
        at=row["at"],
        user_id=row["user_id"],
        username=row["username"],
        action=_ACTION(row["action"]),
        entity_type=row["entity_type"],
        entity_id=row["entity_id"],
        details=json.loads(row["details"]),
        client_address=row["client_address"],
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    user_id: str | None = None
    limit: int = 50
    offset: int = 0


class AuditStore:
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def record(
        self,
        actor: Actor,
        action: AuditAction,
        at: str,
        entity_type: str | None = None,
        entity_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._db.write(
            lambda c: insert_audit(c, actor, action, at, entity_type, entity_id, details)
        )

    async def find(self, flt: AuditFilter) -> tuple[list[AuditEntry], int]:
        where = Where()
        where.equal("action", flt.action)
        where.equal("user_id", flt.user_id)

        def run(conn: Conn) -> tuple[list[AuditEntry], int]:
            rows, total = page(
                conn, _ENTRY_COLUMNS, "audit_log", where, "audit_id DESC", flt.limit, flt.offset
            )
            return [_entry(r) for r in rows], total

        return await self._db.read(run)

    async def purge_before(self, cutoff: str, batch: int) -> int:
        """Delete up to ``batch`` rows written before ``cutoff``; return how many."""
        # Found through the index on ``at`` (migration 3).
        return await self._db.write(
            lambda c: delete_batch(c, "audit_log", "audit_id", "at < ?", (cutoff,), batch)
        )
