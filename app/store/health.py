"""Whether the database takes a write now: readiness asks while writes are failing."""

from __future__ import annotations

import asyncio
import sqlite3

from app.errors import StorageUnavailable
from app.store.engine import Engine


async def can_write(db: Engine, timeout_s: float) -> bool:
    # A write that changes nothing yet commits, so it fails where a real write would (a
    # no-op transaction would not): the dialect's ``touch``.
    try:
        async with asyncio.timeout(timeout_s):
            await db.write(db.dialect.touch)
    except (StorageUnavailable, sqlite3.Error, RuntimeError, TimeoutError):
        return False
    return True
