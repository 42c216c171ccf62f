"""Ending a command: its terminal status is written, then the terminal event published.

A write the database refuses (a full disk) is retried with backoff (0.05 s doubling to
2 s) until it lands, and only then is the event published, so every accepted command
ends without a restart once the storage is back. At shutdown those retries go on until
the grace period is over; what is still unwritten then is ended as ``interrupted`` by the
next start's recovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from app.bus import Bus
from app.clock import Clock
from app.events import terminal_event
from app.services.pipeline.entries import Entry, Stage, log, resolve
from app.store.commands import CommandStore, Finish
from app.telemetry import STORE_FINISH, Telemetry, Tracing
from app.vocabulary import CommandStatus

# Terminal writes the database refused are retried after this, doubling up to the cap.
RETRY_FIRST_S: Final = 0.05
RETRY_MAX_S: Final = 2.0

# Called once the command has left the pipeline: whether its end was stored.
Forget = Callable[[Entry, bool], None]


class Endings:
    """The terminal writes in flight, each its own task (shutdown waits for them)."""

    def __init__(
        self,
        store: CommandStore,
        bus: Bus,
        telemetry: Telemetry,
        clock: Clock,
        tracing: Tracing,
        forget: Forget,
    ) -> None:
        self._store = store
        self._bus = bus
        self._telemetry = telemetry
        self._clock = clock
        self._tracing = tracing
        self._forget = forget
        self._tasks: set[asyncio.Task[None]] = set()
        self._unwritten = 0  # terminal writes waiting for a retry

    @property
    def unwritten(self) -> int:
        """Commands whose terminal status the database refused, waiting for a retry."""
        return self._unwritten

    def end(self, entry: Entry, end: Finish) -> None:
        """Store ``end`` as the command's terminal state (retrying until it lands), then
        publish it; runs as its own task, which shutdown waits for."""
        entry.stage = Stage.ENDING
        duration_s = self._clock.monotonic() - entry.job.accepted_at
        failed = end.status in (CommandStatus.FAILED, CommandStatus.TIMEOUT)
        entry.trace.ended(end.status, end.error_code, end.error_message if failed else None)
        task = asyncio.create_task(
            self._write_end(entry, end, duration_s), name=f"end-{entry.command_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, budget_s: float) -> None:
        """Give the terminal writes in flight up to ``budget_s``; cancel what is left."""
        if not self._tasks:
            return
        _, left = await asyncio.wait(set(self._tasks), timeout=budget_s)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    @property
    def pending(self) -> bool:
        return bool(self._tasks)

    async def _write_end(self, entry: Entry, end: Finish, duration_s: float) -> None:
        command = entry.job.command
        entry.trace.attach()  # the terminal write, log line and exemplar: the command's
        cancelled_by = None
        if end.status is CommandStatus.CANCELLED and entry.cancellation is not None:
            cancelled_by = entry.cancellation.actor
        delay, failures, stored, landed = RETRY_FIRST_S, 0, False, False
        try:
            while True:
                try:
                    with self._tracing.span(STORE_FINISH):
                        stored = await self._store.finish(
                            command.command_id,
                            command.vehicle_id,
                            end,
                            entry.answered,
                            cancelled_by,
                        )
                    break
                except Exception as exc:
                    failures += 1
                    if failures == 1:
                        self._unwritten += 1
                        resolve(entry.outcome, False)
                        log.warning(
                            "could not store the end of command %s (%s); retrying until it lands",
                            command.command_id,
                            exc,
                            extra={"event": "terminal_write_retry"},
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            landed = True
            if failures:
                log.info(
                    "stored the end of command %s after %d failed attempts",
                    command.command_id,
                    failures,
                    extra={"event": "terminal_write_stored"},
                )
            if stored:
                log.info(
                    "command %s ended %s",
                    command.command_id,
                    end.status,
                    extra={
                        "event": "command_end",
                        "command_id": command.command_id,
                        "command_name": command.command_name,
                        "vehicle_id": command.vehicle_id,
                        "status": end.status,
                        "error_code": end.error_code,
                        "duration_ms": round(duration_s * 1000, 1),
                        # What the submit's access line (at DEBUG) says of who asked.
                        "request_id": entry.request_id,
                        "user": entry.user,
                    },
                )
                self._bus.publish(
                    terminal_event(
                        command.command_id, end.status, end.error_code, end.error_message, end.at
                    )
                )
                self._telemetry.command_finished(
                    command.command_name, end.status, end.error_code, duration_s
                )
        finally:
            if failures:
                self._unwritten -= 1
            if not landed:
                log.warning(
                    "the end of command %s was not stored before shutdown; the next start"
                    " ends it as interrupted",
                    command.command_id,
                )
            self._forget(entry, stored)
