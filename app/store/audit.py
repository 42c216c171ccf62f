"""The audit log: who changed what, when, and from where."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from app.models import Actor, AuditEntry
from app.store.database import Database
from app.store.rows import enum_reader, fetch_all
from app.vocabulary import AuditAction


def insert_audit(
    conn: sqlite3.Connection,
    actor: Actor,
    action: AuditAction,
    at: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit row; called inside the transaction of the change it records."""
    conn.execute(
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


def _entry(row: sqlite3.Row) -> AuditEntry:
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
    def __init__(self, db: Database) -> None:
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
        where, args = [], []
        if flt.action is not None:
            where.append("action = ?")
            args.append(flt.action)
        if flt.user_id is not None:
            where.append("user_id = ?")
            args.append(flt.user_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""

        def run(conn: sqlite3.Connection) -> tuple[list[AuditEntry], int]:
            total = conn.execute(f"SELECT count(*) FROM audit_log {clause}", args).fetchone()[0]
            rows = fetch_all(
                conn,
                "SELECT audit_id, at, user_id, username, action, entity_type, entity_id,"
                f" details, client_address FROM audit_log {clause}"
                " ORDER BY audit_id DESC LIMIT ? OFFSET ?",
                [*args, flt.limit, flt.offset],
            )
            return [_entry(r) for r in rows], int(total)

        return await self._db.read(run)

    async def purge_before(self, cutoff: str, batch: int) -> int:
        """Delete up to ``batch`` rows written before ``cutoff``; return how many."""

        def run(conn: sqlite3.Connection) -> int:
            # Found through the index on ``at`` (migration 3).
            cur = conn.execute(
                "DELETE FROM audit_log WHERE audit_id IN (SELECT audit_id FROM audit_log"
                " WHERE at < ? LIMIT ?)",
                (cutoff, batch),
            )
            return cur.rowcount

        return await self._db.write(run)
