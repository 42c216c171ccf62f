"""What waits to go to NATS, in order (``Outbox``): notices first (bounded; past the bound
the oldest goes, said in the log), then command events (bounded; past the bound the
command is gapped: its later events are not queued either, and a gap marker is owed,
queued as soon as there is room). One task (``send``) hands them to NATS one by one.
No I/O here but the send function it is given (``app.bus.nats_bus``)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from app.bus import wire
from app.bus.notices import Notice
from app.events import Event

log = logging.getLogger(__name__)

OUTBOX_SIZE: Final = 4096  # events waiting for NATS; past it a command is gapped
NOTICE_BACKLOG: Final = 1024  # notices waiting for NATS; past it the oldest goes
GAPPED_MAX: Final = 65536  # commands owing a gap marker

# Hands one message (subject, payload) to NATS; False: refused, it will not go.
Send = Callable[[str, bytes], Awaitable[bool]]


class Outbox:
    def __init__(self, node: str, size: int, on_gap: Callable[[], None]) -> None:
        self._node = node
        self._size = size
        self._on_gap = on_gap  # told each time events could not go (for a sampled warning)
        self._events: deque[tuple[str | None, str, bytes]] = deque()
        self._notices: deque[bytes] = deque()
        self._gapped: set[str] = set()
        self._wake = asyncio.Event()
        self.lost = 0  # events not passed on to NATS (their commands were gapped)

    @property
    def pending(self) -> int:
        """Messages not yet handed to NATS, the gap markers owed included."""
        return len(self._events) + len(self._notices) + len(self._gapped)

    @property
    def empty(self) -> bool:
        return not (self._events or self._notices)

    def wake(self) -> None:
        self._wake.set()

    def event(self, event: Event) -> None:
        command_id = event.command_id
        if command_id in self._gapped:
            if not self._queue_event(command_id, None):
                self.lost += 1
                return  # still no room: this event is part of the gap
            self._gapped.discard(command_id)
        if not self._queue_event(command_id, event):
            self._gap(command_id)

    def notice(self, notice: Notice) -> None:
        if len(self._notices) >= NOTICE_BACKLOG:
            self._notices.popleft()
            log.error(
                "bus: more than %d notices waiting for NATS; the oldest is not sent",
                NOTICE_BACKLOG,
                extra={"event": "bus_notice_lost"},
            )
        self._notices.append(wire.notice_message(self._node, notice))
        self._wake.set()

    async def send(self, publish: Send) -> None:
        """The outbox's one sender: notices first, then events in the order queued."""
        while True:
            if self.empty:
                self._queue_gaps()
            if self.empty:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._notices:
                if not await publish(wire.NOTICES, self._notices.popleft()):
                    log.error("bus: NATS refused a notice", extra={"event": "bus_notice_lost"})
                continue
            command_id, subject, payload = self._events.popleft()
            if not await publish(subject, payload) and command_id is not None:
                self._gap(command_id)

    def _queue_event(self, command_id: str, event: Event | None) -> bool:
        if len(self._events) >= self._size:
            return False
        subject = wire.command_subject(command_id)
        self._events.append((command_id, subject, wire.event_message(self._node, event)))
        self._wake.set()
        return True

    def _gap(self, command_id: str) -> None:
        self.lost += 1
        if len(self._gapped) < GAPPED_MAX:
            self._gapped.add(command_id)
        elif command_id not in self._gapped:
            # Past the bound nothing stops this command's later events: a follower
            # elsewhere could see a hole. Said, never silent.
            log.error(
                "bus: %d commands already owe a gap marker; followers elsewhere of one"
                " more may miss events unnoticed",
                GAPPED_MAX,
                extra={"event": "bus_gap_untracked", "command_id": command_id},
            )
        self._on_gap()

    def _queue_gaps(self) -> None:
        """Queue the gap markers owed, now that the outbox has room."""
        while self._gapped and len(self._events) < self._size:
            if not self._queue_event(self._gapped.pop(), None):
                break
