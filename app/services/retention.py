"""Retention: what the database no longer needs is deleted, in small batches so requests
are never held up.

- Always: sessions that expired or were revoked, once a day (the first pass at start).
- With SOVD_RETENTION_DAYS: commands that ended longer ago, with their answers and audit
  rows, and every other audit row older than that.

One pass runs every ``interval_s`` (an hour).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from app.clock import Clock, format_ts
from app.store.audit import AuditStore
from app.store.commands import CommandStore
from app.store.users import UserStore

log = logging.getLogger(__name__)

BATCH: Final = 200
INTERVAL_S: Final = 3600.0
SESSIONS_EVERY: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Purged:
    commands: int = 0
    audit_rows: int = 0
    sessions: int = 0


class Retention:
    def __init__(
        self,
        commands: CommandStore,
        users: UserStore,
        audit: AuditStore,
        days: float | None,
        *,
        interval_s: float = INTERVAL_S,
        batch: int = BATCH,
        clock: Clock | None = None,
    ) -> None:
        self._commands = commands
        self._users = users
        self._audit = audit
        self._days = days
        self._interval_s = interval_s
        self._batch = batch
        self._clock = clock or Clock()
        self._sessions_due: datetime | None = None  # None: at the next pass
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> Purged:
        """One pass: delete what is due now; return how much of each went."""
        now = self._clock.wall()
        commands = audit_rows = sessions = 0
        if self._days is not None:
            cutoff = format_ts(now - timedelta(days=self._days))
            commands = await self._in_batches(
                lambda: self._commands.purge_ended_before(cutoff, self._batch)
            )
            audit_rows = await self._in_batches(
                lambda: self._audit.purge_before(cutoff, self._batch)
            )
        if self._sessions_due is None or now >= self._sessions_due:
            at = format_ts(now)
            sessions = await self._in_batches(
                lambda: self._users.purge_dead_sessions(at, self._batch)
            )
            self._sessions_due = now + SESSIONS_EVERY
        purged = Purged(commands, audit_rows, sessions)
        if commands or audit_rows or sessions:
            log.info(
                "retention deleted %d commands, %d audit rows, %d sessions",
                commands,
                audit_rows,
                sessions,
                extra={"event": "retention"},
            )
        return purged

    async def _in_batches(self, purge: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while True:
            deleted = await purge()
            total += deleted
            if deleted < self._batch:
                return total
            await asyncio.sleep(0)  # let requests in between batches

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # logged, and tried again next interval
                log.exception("retention pass failed")
            await asyncio.sleep(self._interval_s)
