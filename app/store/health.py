"""Whether the database takes a write now: readiness asks while writes are failing."""

from __future__ import annotations

import asyncio
import sqlite3

from app.errors import StorageUnavailable
from app.store.database import Database


def _touch(conn: sqlite3.Connection) -> None:
    # Writing the header's user_version back unchanged alters nothing, yet commits a page,
    # so it fails on a full disk just as a real write would (a no-op transaction would not).
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute(f"PRAGMA user_version = {version}")


async def can_write(db: Database, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await db.write(_touch)
    except (StorageUnavailable, sqlite3.Error, RuntimeError, TimeoutError):
        return False
    return True
