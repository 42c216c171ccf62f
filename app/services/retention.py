"""Retention: commands that ended more than SOVD_RETENTION_DAYS ago are deleted, with
their answers and audit rows, in small batches so requests are never held up."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from app.clock import format_ts
from app.store.commands import CommandStore

log = logging.getLogger(__name__)

BATCH = 200
INTERVAL_S = 3600.0


class Retention:
    def __init__(
        self, store: CommandStore, days: float, interval_s: float = INTERVAL_S, batch: int = BATCH
    ) -> None:
        self._store = store
        self._batch = batch
        self._days = days
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Delete everything past the retention period now; return how many commands."""
        cutoff = format_ts(datetime.now(UTC) - timedelta(days=self._days))
        total = 0
        while True:
            deleted = await self._store.purge_ended_before(cutoff, self._batch)
            total += deleted
            if deleted < self._batch:
                break
            await asyncio.sleep(0)  # let requests in between batches
        if total:
            log.info("retention deleted %d commands", total, extra={"event": "retention"})
        return total

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
